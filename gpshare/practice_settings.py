"""Practice settings added with form version 2 (data dictionary v2, "Practice settings (v2)"):
the local children's services front door, the practice's local authority and its Appropriate
Policy Document. Validation and the pre-fill of a new assessment live here, free of Qt and SQL,
so the service, the CLI and the admin screen all give the same answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

# The keys are a contract: the navigator's Context reads `local_authority` and
# `appropriate_policy_document` by exactly these names.
DEFAULTS: dict[str, str] = {
    "default_recipient_name": "",
    "default_recipient_email": "",
    "local_authority": "",
    "appropriate_policy_document": "",
}
LABELS: dict[str, str] = {
    "default_recipient_name": "Default recipient (front door)",
    "default_recipient_email": "Default recipient's secure email",
    "local_authority": "Practice's local authority",
    "appropriate_policy_document": "Appropriate Policy Document (reference and date)",
}
HINTS: dict[str, str] = {
    "default_recipient_name": (
        "The local children's services front door or MASH, e.g. Leeds Children's Social Work "
        "Service Front Door. New assessments start with it as the recipient."
    ),
    "default_recipient_email": "The front door's secure address, e.g. frontdoor@yourcouncil.gov.uk",
    "local_authority": (
        "The local authority the practice is in, e.g. Leeds. New assessments start with it as the "
        "child's local authority; change it there when the child lives elsewhere."
    ),
    "appropriate_policy_document": (
        "The practice's Appropriate Policy Document for special category data (ask your DPO): "
        "its reference and the date it was approved or last reviewed, e.g. IG-APD-03, 2026-04-01"
    ),
}
MAX_LENGTHS: dict[str, int] = {
    "default_recipient_name": 200,  # the form's recipient_name holds 200
    "default_recipient_email": 254,  # the longest address RFC 5321 allows
    "local_authority": 100,
    "appropriate_policy_document": 200,
}
# setting -> the form field a new assessment takes it from (only when the form has that field).
PREFILL: dict[str, str] = {
    "default_recipient_name": "recipient_name",
    "local_authority": "child_local_authority",
}

EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_ISO_DATE_RE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")


def problem(key: str, value: str, today: date) -> str | None:
    """What is wrong with a v2 setting's (stripped) value, or None. Empty clears a setting."""
    label = LABELS[key]
    if any(ord(ch) < 32 for ch in value):
        return f"{label} contains invisible control characters (often from pasting); retype it on one line."
    limit = MAX_LENGTHS[key]
    if len(value) > limit:
        return f"{label} is {len(value)} characters; {limit} is the most. Shorten it."
    if not value:
        return None
    if key == "default_recipient_email" and not EMAIL_RE.fullmatch(value):
        return (
            f"{label} must be one email address like frontdoor@council.gov.uk "
            "(no spaces, one @, a dot in the part after it)."
        )
    if key == "appropriate_policy_document":
        return _apd_problem(label, value, today)
    return None


def _apd_problem(label: str, value: str, today: date) -> str | None:
    example = "e.g. IG-APD-03, 2026-04-01"
    found = _ISO_DATE_RE.search(value)
    if found is None:
        return (
            f"{label} needs the date it was approved or last reviewed, as YYYY-MM-DD ({example})."
        )
    try:
        when = date(int(found[1]), int(found[2]), int(found[3]))
    except ValueError:
        return f"{label}: {found[0]} is not a real date; write it as YYYY-MM-DD ({example})."
    if when > today:
        return f"{label}: the date {found[0]} is in the future; give the date it was approved or last reviewed."
    reference = (value[: found.start()] + value[found.end() :]).strip(" ,;:-–—/")
    if not reference:
        return f"{label} needs the document's reference as well as its date ({example})."
    return None


def prefill(
    field_ids: Iterable[str], settings: Mapping[str, str], answers: Mapping[str, Any]
) -> dict[str, Any]:
    """`answers` with the practice defaults added for fields the form has and nobody answered.

    An answer the user gave (anything not empty) is never replaced.
    """
    out = dict(answers)
    fields = set(field_ids)
    for key, field_id in PREFILL.items():
        value = (settings.get(key) or "").strip()
        current = out.get(field_id)
        if value and field_id in fields and (current is None or str(current).strip() == ""):
            out[field_id] = value
    return out
