"""Practice settings and the practice CA certificate (session.practice)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gpshare import practice_settings
from gpshare.clock import today
from gpshare.errors import ValidationFailed
from gpshare.records import parse_date
from gpshare.services._base import Service
from gpshare.services._records import REFERRAL_SETTING_KEYS, _store_referral_states
from gpshare.store import backup
from gpshare.store.port import WriteTx

# Practice settings passed to the navigator for form rules (data-dictionary-v2 "Practice
# settings"); the settings screen that edits them belongs to the settings work.
RULE_SETTINGS = ("local_authority", "appropriate_policy_document")
DEFAULT_SETTINGS = {
    "practice_name": "",
    "practice_address": "",
    "practice_ods_code": "",
    "practice_phone": "",
    "practice_secure_email": "",
    "auto_lock_minutes": "5",
    "backup_keep": str(backup.DEFAULT_KEEP),
    "local_closure_days": "",
    "written_confirmation_hours": "24",
    **practice_settings.DEFAULTS,
}


SETTING_LABELS = {
    "practice_name": "Practice name",
    "practice_address": "Practice address",
    "practice_ods_code": "ODS code",
    "practice_phone": "Practice phone",
    "practice_secure_email": "Secure email",
    "auto_lock_minutes": "Auto-lock after (minutes)",
    "backup_keep": "Backups to keep",
    "local_closure_days": "Local closure days",
    "written_confirmation_hours": "Written confirmation deadline (hours)",
    **practice_settings.LABELS,
}


class PracticeService(Service):
    """Practice settings: read by everyone, changed by the administrator."""

    def settings(self) -> dict[str, str]:
        """Practice settings (any unlocked user may read; letters need them)."""
        self._require("read_settings")
        values = dict(DEFAULT_SETTINGS)
        values["practice_name"] = self._session.vault.practice_name
        with self._session._read() as tx:
            stored = tx.get_settings()
        values.update(
            {k: v for k, v in stored.items() if k in DEFAULT_SETTINGS}
        )  # not internal flags
        return values

    def update_settings(self, changes: Mapping[str, str]) -> None:
        """Admin: change settings; each value is validated with a field-level message."""
        self._require("change_settings")
        errors = []
        clean: dict[str, str] = {}
        for key, raw in changes.items():
            value = str(raw).strip()
            label = SETTING_LABELS.get(key)
            if label is None:
                errors.append({"field": key, "message": f"'{key}' is not a setting gpshare knows."})
                continue
            if key in practice_settings.DEFAULTS:
                found = practice_settings.problem(key, value, today(self._session.clock))
                if found:
                    errors.append({"field": key, "message": found})
                    continue
            if key in ("auto_lock_minutes", "backup_keep", "written_confirmation_hours"):
                lo, hi = {
                    "auto_lock_minutes": (1, 60),
                    "backup_keep": (1, 100),
                    "written_confirmation_hours": (1, 168),
                }[key]
                if not value.isdigit() or not lo <= int(value) <= hi:
                    errors.append(
                        {
                            "field": key,
                            "message": f"{label} must be a whole number from {lo} to {hi}.",
                        }
                    )
                    continue
            if (
                key == "practice_ods_code"
                and value
                and not re.fullmatch(r"[A-Za-z0-9]{3,6}", value)
            ):
                errors.append(
                    {"field": key, "message": "ODS code is 3–6 letters and digits, e.g. B82005."}
                )
                continue
            if (
                key == "practice_secure_email"
                and value
                and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value)
            ):
                errors.append(
                    {"field": key, "message": "Secure email must look like name@nhs.net."}
                )
                continue
            if key == "local_closure_days" and value:
                bad = [d for d in re.split(r"[,\s]+", value) if d and parse_date(d) is None]
                if bad:
                    errors.append(
                        {
                            "field": key,
                            "message": f"Closure days must be dates like 2026-12-29; not understood: {', '.join(bad)}.",
                        }
                    )
                    continue
            if len(value) > 500:
                errors.append(
                    {"field": key, "message": f"{label} is too long (500 characters at most)."}
                )
                continue
            clean[key] = value
        if errors:
            raise ValidationFailed("; ".join(e["message"] for e in errors), errors)

        def work(tx: WriteTx) -> None:
            tx.put_settings(clean)
            if REFERRAL_SETTING_KEYS & set(clean):
                # Due dates of unacknowledged and undecided referrals depend on these.
                _store_referral_states(
                    tx,
                    tx.completed_records_light(statuses=("completed", "sent", "acknowledged")),
                )

        self._session._write("settings_changed", work, details={"keys": sorted(clean)})

    def rule_settings(self) -> dict[str, str]:
        """The practice settings form rules read (RULE_SETTINGS), empty when not set."""
        self._require("read_settings")
        with self._session._read() as tx:
            stored = tx.get_settings()
        return {key: str(stored.get(key) or "") for key in RULE_SETTINGS}

    def practice_details(self) -> Any:
        """Letterhead details from settings."""
        self._require("read_settings")
        from gpshare.letter import PracticeDetails

        values = self.settings()
        return PracticeDetails(
            values["practice_name"],
            values["practice_address"],
            values["practice_ods_code"],
            values["practice_phone"],
            values["practice_secure_email"],
        )

    def practice_ca_pem(self) -> bytes:
        """The practice CA certificate (public), for local authorities to trust."""
        self._require("export_ca")
        cert = self._session.users._practice_ca_pem()
        self._session.audit("ca_exported")
        return cert
