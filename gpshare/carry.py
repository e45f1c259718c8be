"""Carry a draft's answers from form version 1 to version 2 (data-dictionary-v2.md). Pure.

New assessments always use the newest form; a v1 draft opened after the upgrade is carried:
every answer whose id (and token) still exists is kept, a few are mapped to their v2 fields,
and the rest are dropped into the draft's history, which is kept with the record's answers
under HISTORY_KEY (encrypted like them, never printed). The caller audits the carry with ids
only. No Qt, no SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gpshare.forms import CHOICE_TYPES, LIST_CHOICE_TYPES, PEOPLE_TYPES, Form

HISTORY_KEY = "_history"

# v1 informing fields -> the v2 parents_* group (child_informed is left for the user).
_INFORMING_MAP = {
    "family_informed": "parents_informed",
    "not_informed_reason": "parents_not_informed_reason",
}
_DETAIL_FIELDS = ("not_informed_detail", "informed_who", "informed_how")


@dataclass(frozen=True)
class Change:
    """One answer that did not carry over unchanged: mapped to `to`, or dropped (`to` None)."""

    field: str
    value: Any
    to: str | None
    reason: str

    def describe(self, label: str) -> str:
        """One line for the list shown to the user."""
        if self.to is not None:
            return f"{label}: moved to “{self.reason}”."
        return (
            f"{label}: not carried over — {self.reason}. The answer is kept in the draft's history."
        )


@dataclass(frozen=True)
class Carried:
    """The carried answers (without history) and what changed."""

    answers: dict[str, Any]
    changes: tuple[Change, ...]
    from_version: int
    to_version: int

    def history_entries(self, at: str) -> list[dict[str, Any]]:
        """The entries appended to the draft's history (mapped and dropped answers)."""
        return [
            {
                "at": at,
                "event": "carried_to_form_version",
                "from_version": self.from_version,
                "to_version": self.to_version,
                "field": c.field,
                "to": c.to,
                "value": c.value,
            }
            for c in self.changes
        ]

    def audit_details(self) -> dict[str, Any]:
        """Ids only, for the audit log (never the answers themselves)."""
        return {
            "from_version": self.from_version,
            "to_version": self.to_version,
            "mapped": sorted({c.field for c in self.changes if c.to is not None}),
            "dropped": sorted({c.field for c in self.changes if c.to is None}),
        }


def _fits(form: Form, field_id: str, value: Any) -> tuple[Any, str | None]:
    """(value to keep or None, reason when not kept) for an answer under `form`."""
    if not form.has_field(field_id):
        return None, f"version {form.version} has no such question"
    field = form.field(field_id)
    if field.type in LIST_CHOICE_TYPES and isinstance(value, list):
        kept = [v for v in value if v in field.tokens]
        gone = [v for v in value if v not in field.tokens]
        if gone:
            return kept or None, f"“{', '.join(map(str, gone))}” is no longer an option"
        return value, None
    if field.type in CHOICE_TYPES and isinstance(value, str) and value not in field.tokens:
        return None, f"“{value}” is no longer an option"
    if field.type in PEOPLE_TYPES and isinstance(value, list):
        columns = {c.id for c in field.columns}
        rows = [r for r in value if isinstance(r, Mapping)]
        if any(set(r) - columns for r in rows):
            return None, "its details no longer fit the question"
    return value, None


def carry_v1_to_v2(answers: Mapping[str, Any], v1: Form, v2: Form) -> Carried:
    """Carry v1 draft answers to v2 exactly as data-dictionary-v2.md says."""
    out: dict[str, Any] = {}
    changes: list[Change] = []
    source = {k: v for k, v in answers.items() if k != HISTORY_KEY}

    def label(field_id: str) -> str:
        return v2.field(field_id).label

    for field_id, value in source.items():
        if field_id == "additional_flags" and isinstance(value, list) and "domestic_abuse" in value:
            rest = [v for v in value if v != "domestic_abuse"]
            if rest:
                out[field_id] = rest
            factors = list(out.get("parental_factors") or source.get("parental_factors") or [])
            out["parental_factors"] = [*factors, "domestic_abuse"]
            changes.append(
                Change(field_id, "domestic_abuse", "parental_factors", label("parental_factors"))
            )
            continue
        if field_id == "withheld_information":
            out["withheld_from_letter"] = value
            changes.append(
                Change(field_id, value, "withheld_from_letter", label("withheld_from_letter"))
            )
            continue
        if field_id in _INFORMING_MAP:
            target = _INFORMING_MAP[field_id]
            kept, _ = _fits(v2, target, value)
            if kept is not None:
                out[target] = kept
                changes.append(Change(field_id, value, target, label(target)))
            else:
                changes.append(Change(field_id, value, None, "its answer is not an option now"))
            continue
        if field_id in _DETAIL_FIELDS:
            continue  # combined below into parents_informed_detail
        if field_id == "patient_views":
            changes.append(
                Change(
                    field_id,
                    value,
                    None,
                    "whose views they were is not recorded; add them to the child's or the "
                    "parents' views",
                )
            )
            continue
        kept, reason = _fits(v2, field_id, value)
        if kept is not None:
            out[field_id] = kept
        if reason is not None:
            changes.append(Change(field_id, value, None, reason))

    parts = [
        str(source[f]).strip()
        for f in _DETAIL_FIELDS
        if isinstance(source.get(f), str) and source[f].strip()
    ]
    if parts:
        out["parents_informed_detail"] = "; ".join(parts)
        for f in _DETAIL_FIELDS:
            if f in source and isinstance(source[f], str) and source[f].strip():
                changes.append(
                    Change(
                        f, source[f], "parents_informed_detail", label("parents_informed_detail")
                    )
                )
    return Carried(out, tuple(changes), v1.version, v2.version)


def change_lines(carried: Carried, v1: Form) -> list[str]:
    """Plain lines naming every mapped or dropped answer, for the first step the user sees."""
    lines = []
    for change in carried.changes:
        name = v1.field(change.field).label if v1.has_field(change.field) else change.field
        lines.append(change.describe(name))
    return lines
