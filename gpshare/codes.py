"""SNOMED CT codes a completed v2 record suggests for the GP clinical system, and the online and
proxy access warning that goes with them (data dictionary v2, "SNOMED CT codes to suggest").

The navigator computes the codes into ``outcome["snomed_codes"]``; this module only reads them
back for the record view, the CLI and the CSV export. The letter never prints them. Qt-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from gpshare import navigator
from gpshare.forms import Form

VISIBILITY_PROMPT = "online_visibility"
VISIBILITY_WARNING = "Hide this entry from online and proxy access when you add it."
# The critical variant (dictionary v2): the family has not been told, or someone who may pose a
# risk is a parent, carer or household member, so a visible code could tell them of the referral.
VISIBILITY_CRITICAL = (
    "Add these codes only after online and proxy access to the entry has been hidden, and "
    "discuss the coding with your safeguarding lead: the family has not been told of this "
    "concern, or someone who may pose a risk could read the record through online or proxy "
    "access."
)


@dataclass(frozen=True)
class SuggestedCode:
    """One code to add: the SNOMED CT concept id (a string), its term and whose record."""

    code: str
    term: str
    for_whom: str

    def to_json(self) -> dict[str, str]:
        """The dictionary's `{code, term, for}` shape."""
        return {"code": self.code, "term": self.term, "for": self.for_whom}


def suggested_codes(outcome: Mapping[str, Any] | None) -> list[SuggestedCode] | None:
    """The codes of a completed record's outcome; None when the outcome has no codes key (v1).

    Entries that are not well-formed are skipped rather than shown half-empty; codes stay strings
    (a SNOMED id can be 18 digits and must never pass through a number).
    """
    if not isinstance(outcome, Mapping) or "snomed_codes" not in outcome:
        return None
    raw = outcome.get("snomed_codes")
    found: list[SuggestedCode] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, Mapping):
            continue
        code, term, whom = (str(item.get(k) or "").strip() for k in ("code", "term", "for"))
        if code.isdigit() and term:
            found.append(SuggestedCode(code, term, whom))
    return found


def record_prompts(
    form: Form, answers: Mapping[str, Any], completed: date, settings: Mapping[str, str]
) -> dict[str, navigator.Prompt]:
    """The prompts a completed record raises, by token, with their severity and message.

    The stored outcome keeps only prompt tokens, but a prompt's severity can depend on the
    answers (the form's `critical_when`), so it is re-evaluated from the record's frozen answers
    on its completion date. Earlier records are left out: no prompt severity depends on them.
    """
    context = navigator.Context(today=completed, settings=dict(settings))
    return {p.token: p for p in navigator.evaluate(form, answers, context).prompts}


def visibility_is_critical(
    outcome: Mapping[str, Any] | None, severities: Mapping[str, str]
) -> bool:
    """True when the outcome raised the online-visibility prompt at critical severity.

    `severities` maps prompt tokens to severities (see record_prompts). Any raised token named
    ``online_visibility…`` counts, so a separate critical token would work as well as the form's
    `critical_when`.
    """
    prompts = outcome.get("prompts") if isinstance(outcome, Mapping) else None
    return any(
        isinstance(token, str)
        and token.startswith(VISIBILITY_PROMPT)
        and severities.get(token) == "critical"
        for token in prompts or []
    )


def visibility_warning(
    outcome: Mapping[str, Any] | None,
    severities: Mapping[str, str],
    critical_message: str | None = None,
) -> str:
    """The warning to show with the codes: the critical variant when the outcome calls for it,
    in the form's own words when given (the raised prompt's message), else ours."""
    if visibility_is_critical(outcome, severities):
        return f"{VISIBILITY_WARNING} {critical_message or VISIBILITY_CRITICAL}"
    return VISIBILITY_WARNING


def critical_visibility_message(prompts: Mapping[str, navigator.Prompt]) -> str | None:
    """The message of a raised critical online-visibility prompt (see record_prompts), if any."""
    for token, prompt in prompts.items():
        if token.startswith(VISIBILITY_PROMPT) and prompt.severity == "critical":
            return prompt.message
    return None


def codes_text(outcome: Mapping[str, Any] | None) -> str:
    """The codes on one line for a CSV cell: ``CODE term (for); …`` (empty when none)."""
    return "; ".join(
        f"{c.code} {c.term}" + (f" ({c.for_whom})" if c.for_whom else "")
        for c in suggested_codes(outcome) or []
    )
