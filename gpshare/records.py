"""Record domain objects (no Qt, no SQL): assessments, addenda, letters, follow-ups, reviews."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

ROLES = ("clinician", "lead", "admin")
ROLE_TITLES = {
    "clinician": "Clinician",
    "lead": "Practice safeguarding lead",
    "admin": "Practice administrator",
}
_REF_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no I, O, 0, 1: read aloud over the phone


def new_record_id() -> str:
    """A short reference safe to read out: 'SG-7K3F-9QX2'."""
    chars = "".join(secrets.choice(_REF_ALPHABET) for _ in range(8))
    return f"SG-{chars[:4]}-{chars[4:]}"


@dataclass(frozen=True)
class User:
    """A practice user."""

    username: str
    full_name: str
    role: str
    gmc_number: str | None
    active: bool
    must_change_password: bool
    created: str

    @property
    def role_title(self) -> str:
        return ROLE_TITLES.get(self.role, self.role)


@dataclass(frozen=True)
class ChildSummary:
    """Who a record is about, as lists and chronology show it."""

    given_name: str
    family_name: str
    nhs_number: str | None
    date_of_birth: str | None

    @property
    def display_name(self) -> str:
        return f"{self.given_name} {self.family_name}".strip() or "(name not entered)"


@dataclass(frozen=True)
class Record:
    """An assessment record: a draft, or a completed (immutable) record."""

    id: str
    clinician: str
    status: str
    form_id: str
    form_version: int
    answers: dict[str, Any]
    current_step: str | None
    outcome: dict[str, Any] | None
    created: str
    updated: str
    completed: str | None
    child: ChildSummary
    clinician_name: str = ""

    @property
    def is_draft(self) -> bool:
        return self.status == "draft"

    @property
    def pathway(self) -> str | None:
        return (self.outcome or {}).get("pathway")

    @property
    def consent_basis(self) -> str | None:
        return (self.outcome or {}).get("consent_basis")

    @property
    def letter_required(self) -> bool:
        return bool((self.outcome or {}).get("letter_required"))

    def to_json(self) -> dict[str, Any]:
        """The `records --json` shape of DESIGN §5."""
        return {
            "record_id": self.id,
            "status": self.status,
            "created": self.created,
            "completed": self.completed,
            "clinician": self.clinician,
            "child": {
                "name": self.child.display_name,
                "nhs_number": self.child.nhs_number,
                "date_of_birth": self.child.date_of_birth,
            },
            "outcome": self.outcome,
        }


@dataclass(frozen=True)
class Addendum:
    """A later fact appended to a completed record."""

    id: int
    record_id: str
    author: str
    created: str
    body: str


@dataclass(frozen=True)
class LetterMeta:
    """A generated, signed letter stored with its record."""

    id: int
    record_id: str
    created: str
    signer: str
    sha256: str


@dataclass(frozen=True)
class FollowUp:
    """A referral follow-up event."""

    id: int
    record_id: str
    event: str
    at: str
    recorded_by: str
    recorded_at: str
    decision: str | None
    note: str | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Review:
    """A lead's review of a completed record (append-only)."""

    id: int
    record_id: str
    reviewer: str
    created: str
    verdict: str
    comments: str | None
    learning: str | None


@dataclass(frozen=True)
class AuditEvent:
    """One audit log line as the UI and CLI show it."""

    seq: int
    at: str
    actor: str
    action: str
    record_id: str | None
    details: dict[str, Any]


def parse_date(text: str | None) -> date | None:
    """ISO date or None (tolerates datetimes)."""
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def parse_datetime(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
