"""Use cases: the one place for access control and audit (DESIGN §5).

`open_session` (gpshare.services.vaults) returns a `Session` (gpshare.services.session): the
context every use case shares. The use cases are grouped in service objects reached from it
(``session.users``, ``session.assessments``, …), one module per area; each checks the acting
user against the one table in gpshare/access.py. The UI and the CLI call these; neither runs
SQL nor decides who may do what.

The names below are re-exported for the UI, CLI, bench and tests, which import them from
``gpshare.services``; the UI and CLI reach storage types (filters, errors, BackupInfo,
ChainReport, DatabaseError) only through here (import-linter contract "UI and CLI never
import the store").
"""

from __future__ import annotations

from gpshare.errors import DatabaseError as DatabaseError
from gpshare.errors import KeyringUnavailableError as KeyringUnavailableError
from gpshare.errors import LockedOutError as LockedOutError
from gpshare.filters import AuditFilter as AuditFilter
from gpshare.filters import RecordFilter as RecordFilter
from gpshare.services._records import EXPORT_PAGE as EXPORT_PAGE
from gpshare.services._records import SEARCH_FIELDS as SEARCH_FIELDS
from gpshare.services.assessments import DEFAULT_FORM_ID as DEFAULT_FORM_ID
from gpshare.services.assessments import (
    DRAFT_AUDIT_COALESCE_SECONDS as DRAFT_AUDIT_COALESCE_SECONDS,
)
from gpshare.services.backups import backups_for_failed_unlock as backups_for_failed_unlock
from gpshare.services.backups import list_backups as list_backups
from gpshare.services.backups import restore as restore
from gpshare.services.keys import OwnKey as OwnKey
from gpshare.services.keys import PendingKey as PendingKey
from gpshare.services.keys import RememberedLoginView as RememberedLoginView
from gpshare.services.letters import LetterResult as LetterResult
from gpshare.services.session import Session as Session
from gpshare.services.settings import DEFAULT_SETTINGS as DEFAULT_SETTINGS
from gpshare.services.settings import REFERRAL_SETTING_KEYS as REFERRAL_SETTING_KEYS
from gpshare.services.settings import RULE_SETTINGS as RULE_SETTINGS
from gpshare.services.settings import SETTING_LABELS as SETTING_LABELS
from gpshare.services.users import GMC_RE as GMC_RE
from gpshare.services.users import MAX_PASSWORD_LENGTH as MAX_PASSWORD_LENGTH
from gpshare.services.users import MIN_PASSWORD_LENGTH as MIN_PASSWORD_LENGTH
from gpshare.services.users import MIN_PASSWORD_SCORE as MIN_PASSWORD_SCORE
from gpshare.services.users import USERNAME_RE as USERNAME_RE
from gpshare.services.users import PasswordStrength as PasswordStrength
from gpshare.services.users import one_time_password as one_time_password
from gpshare.services.users import password_strength as password_strength
from gpshare.services.users import validate_password as validate_password
from gpshare.services.users import validate_username as validate_username
from gpshare.services.vaults import INTEGRITY_CHECK_INTERVAL as INTEGRITY_CHECK_INTERVAL
from gpshare.services.vaults import CreatedVault as CreatedVault
from gpshare.services.vaults import LeadAtInit as LeadAtInit
from gpshare.services.vaults import check_keyring as check_keyring
from gpshare.services.vaults import create_vault as create_vault
from gpshare.services.vaults import create_vault_v2 as create_vault_v2
from gpshare.services.vaults import damaged_database as damaged_database
from gpshare.services.vaults import has_remembered_login as has_remembered_login
from gpshare.services.vaults import open_session as open_session
from gpshare.services.vaults import open_session_keyring as open_session_keyring
from gpshare.services.vaults import recover_with_code as recover_with_code
from gpshare.services.vaults import save_file as save_file
from gpshare.services.vaults import session_scope as session_scope
from gpshare.services.views import ChronologyView as ChronologyView
from gpshare.services.views import DraftsSummary as DraftsSummary
from gpshare.services.views import RecordsPage as RecordsPage
from gpshare.services.views import RecordView as RecordView
from gpshare.store.audit import ChainReport as ChainReport
from gpshare.store.backup import BackupInfo as BackupInfo
