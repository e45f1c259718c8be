"""Transitional: removed when the services use the port (issue #12).

The old path of gpshare.store.sqlcipher.repositories. The module object itself is that module
(see the last line), so code and tests that patch `gpshare.store.repositories.f` patch what the
engine calls.
"""

from __future__ import annotations

import sys

from gpshare.store.sqlcipher import repositories as _impl
from gpshare.store.sqlcipher.repositories import AuditFilter as AuditFilter
from gpshare.store.sqlcipher.repositories import DashboardRows as DashboardRows
from gpshare.store.sqlcipher.repositories import RecordFilter as RecordFilter
from gpshare.store.sqlcipher.repositories import StoredState as StoredState
from gpshare.store.sqlcipher.repositories import WrappedKey as WrappedKey
from gpshare.store.sqlcipher.repositories import active_signing_key as active_signing_key
from gpshare.store.sqlcipher.repositories import add_addendum as add_addendum
from gpshare.store.sqlcipher.repositories import add_followup as add_followup
from gpshare.store.sqlcipher.repositories import (
    add_household_link_review as add_household_link_review,
)
from gpshare.store.sqlcipher.repositories import add_letter as add_letter
from gpshare.store.sqlcipher.repositories import add_review as add_review
from gpshare.store.sqlcipher.repositories import add_signing_key as add_signing_key
from gpshare.store.sqlcipher.repositories import addenda as addenda
from gpshare.store.sqlcipher.repositories import audit_events as audit_events
from gpshare.store.sqlcipher.repositories import complete_record as complete_record
from gpshare.store.sqlcipher.repositories import completed_records_light as completed_records_light
from gpshare.store.sqlcipher.repositories import count_records as count_records
from gpshare.store.sqlcipher.repositories import dashboard_rows as dashboard_rows
from gpshare.store.sqlcipher.repositories import deactivate_signing_keys as deactivate_signing_keys
from gpshare.store.sqlcipher.repositories import delete_draft as delete_draft
from gpshare.store.sqlcipher.repositories import due_referrals as due_referrals
from gpshare.store.sqlcipher.repositories import followups as followups
from gpshare.store.sqlcipher.repositories import fts_query as fts_query
from gpshare.store.sqlcipher.repositories import get_practice_ca as get_practice_ca
from gpshare.store.sqlcipher.repositories import get_record as get_record
from gpshare.store.sqlcipher.repositories import get_settings as get_settings
from gpshare.store.sqlcipher.repositories import get_user as get_user
from gpshare.store.sqlcipher.repositories import (
    household_link_decisions as household_link_decisions,
)
from gpshare.store.sqlcipher.repositories import insert_record as insert_record
from gpshare.store.sqlcipher.repositories import insert_user as insert_user
from gpshare.store.sqlcipher.repositories import last_draft_saved_at as last_draft_saved_at
from gpshare.store.sqlcipher.repositories import letter_by_hash as letter_by_hash
from gpshare.store.sqlcipher.repositories import letter_pdf as letter_pdf
from gpshare.store.sqlcipher.repositories import letter_unsigned_pdf as letter_unsigned_pdf
from gpshare.store.sqlcipher.repositories import letters as letters
from gpshare.store.sqlcipher.repositories import linked_records as linked_records
from gpshare.store.sqlcipher.repositories import list_records as list_records
from gpshare.store.sqlcipher.repositories import list_users as list_users
from gpshare.store.sqlcipher.repositories import move_draft_to_form as move_draft_to_form
from gpshare.store.sqlcipher.repositories import open_referrals as open_referrals
from gpshare.store.sqlcipher.repositories import overdue_counts as overdue_counts
from gpshare.store.sqlcipher.repositories import put_links as put_links
from gpshare.store.sqlcipher.repositories import put_practice_ca as put_practice_ca
from gpshare.store.sqlcipher.repositories import put_referral_states as put_referral_states
from gpshare.store.sqlcipher.repositories import put_search_text as put_search_text
from gpshare.store.sqlcipher.repositories import put_settings as put_settings
from gpshare.store.sqlcipher.repositories import records_for_child as records_for_child
from gpshare.store.sqlcipher.repositories import records_without_links as records_without_links
from gpshare.store.sqlcipher.repositories import referrals_with_action as referrals_with_action
from gpshare.store.sqlcipher.repositories import (
    replace_signing_key_wrap as replace_signing_key_wrap,
)
from gpshare.store.sqlcipher.repositories import reviews as reviews
from gpshare.store.sqlcipher.repositories import send_timings as send_timings
from gpshare.store.sqlcipher.repositories import (
    set_must_change_password as set_must_change_password,
)
from gpshare.store.sqlcipher.repositories import set_user_active as set_user_active
from gpshare.store.sqlcipher.repositories import update_draft as update_draft

sys.modules[__name__] = _impl
