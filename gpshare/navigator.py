"""Pure step navigation: (form, answers, context) -> visible steps, errors, prompts, outcome.

No Qt, no I/O. `evaluate` runs on every keystroke, so it is a single pass over the form and
never raises, whatever the answers hold. The wizard, the CLI and completion all use it; the
UI only renders what it returns.

Conventions (see docs/forms.md):
- A field whose `show_when` is false, or in a hidden step, is not required and is dropped
  from `cleaned`; so are values that fail validation.
- `show_when` only reads earlier fields, so one pass in form order decides visibility.
- The child's age comes from `date_of_birth` on `context.today`; a child is unborn when
  `nhs_number_unknown_reason = unborn` (no age, counts as under 13).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import date, datetime, timedelta
from typing import Any

from gpshare import nhs_number, places
from gpshare.forms import (
    PLACEHOLDER_RE,
    V2_FIELD_OPERATORS,
    CodeRule,
    Column,
    Condition,
    Field,
    Form,
    parse_anchor,
)

DOB_FIELD = "date_of_birth"
UNKNOWN_REASON_FIELD = "nhs_number_unknown_reason"
UNBORN_TOKEN = "unborn"
ADULT_AGE = 18

DEFAULT_MAX_LENGTH = {"text": 200, "longtext": 10000}

_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_UK_DATE = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$")
_ISO_DATETIME = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})[T ](\d{1,2}):(\d{2})(?::(\d{2}))?$")
_UK_DATETIME = re.compile(
    r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})[T ,]+(\d{1,2}):(\d{2})(?::(\d{2}))?$"
)
_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})$")
_NAME_EXTRA = frozenset(" '’-\u200c\u200d")

_MISSING: Any = object()
_V2_OPERATORS = frozenset({*V2_FIELD_OPERATORS, "setting_empty"})


# What the outcome tokens mean, in the words every screen and the Help examples use.
PATHWAY_LABELS: dict[str, str] = {
    "emergency": "Emergency referral",
    "legal_duty": "Disclosure required by law",
    "referral": "Referral",
    "request_response": "Response to a request for information",
    "limited_sharing": "Limited information shared",
    "early_help": "Early help referral",
    "monitor": "Not shared now – monitor and review",
}

CONSENT_BASIS_LABELS: dict[str, str] = {
    "consent_given": "Shared with consent",
    "shared_without_consent_refused": "Shared without consent — consent was refused or only partly given",
    "shared_without_consent_not_sought": "Shared without consent — consent was not sought or could not be given",
    "not_applicable": "Not applicable — nothing is shared now",
}


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PriorRecord:
    """An earlier record for the same child, from the chronology."""

    record_id: str
    created: date
    pathway: str | None
    decision: str | None
    review_date: date | None
    author: str
    match: str  # "nhs" | "probable"


@dataclass(frozen=True)
class Context:
    """What the navigator needs besides the answers."""

    today: date
    prior_records: tuple[PriorRecord, ...] = ()
    # Practice settings some v2 rules read (local_authority, appropriate_policy_document).
    settings: Mapping[str, str] = dc_field(default_factory=dict)


@dataclass(frozen=True)
class FieldError:
    field: str
    step: str
    message: str
    kind: str  # "required" | "invalid" | "rule"


@dataclass(frozen=True)
class Prompt:
    token: str
    message: str
    severity: str  # "info" | "warning" | "critical"


@dataclass(frozen=True)
class Outcome:
    pathway: str | None
    consent_basis: str | None
    letter_required: bool
    prompts: tuple[str, ...]
    letter_title: str | None = None
    snomed_codes: tuple[dict[str, str], ...] = ()
    extended: bool = False  # the form defines the v2 keys (letter_title, snomed_codes)

    def to_dict(self) -> dict[str, Any]:
        """The outcome as stored with a completed record (v2 keys only for v2 forms)."""
        data: dict[str, Any] = {
            "pathway": self.pathway,
            "consent_basis": self.consent_basis,
            "letter_required": self.letter_required,
            "prompts": list(self.prompts),
        }
        if self.extended:
            data["letter_title"] = self.letter_title
            data["snomed_codes"] = [dict(c) for c in self.snomed_codes]
        return data


@dataclass(frozen=True)
class Evaluation:
    visible_steps: tuple[str, ...]
    visible_fields: frozenset[str]
    errors: tuple[FieldError, ...]
    prompts: tuple[Prompt, ...]
    outcome: Outcome
    cleaned: dict[str, Any]
    age: int | None
    unborn: bool

    def errors_for(self, field: str) -> list[FieldError]:
        return [e for e in self.errors if e.field == field]

    def step_errors(self, step: str) -> list[FieldError]:
        return [e for e in self.errors if e.step == step]

    @property
    def ok(self) -> bool:
        """True when nothing blocks completion."""
        return not self.errors


# --------------------------------------------------------------------------- conditions


class _Env:
    """Values seen so far in the pass, plus the facts age/unborn/prior-records conditions read."""

    __slots__ = ("values", "present", "has_prior", "today", "dob", "unborn", "settings")

    def __init__(self, context: Context) -> None:
        self.values: dict[str, Any] = {}
        self.present: set[str] = set()
        self.has_prior = bool(context.prior_records)
        self.today = context.today
        self.dob: date | None = None
        self.unborn = False
        settings = context.settings if isinstance(context.settings, Mapping) else {}
        self.settings: Mapping[str, str] = settings

    @property
    def age(self) -> int | None:
        if self.unborn or self.dob is None or self.dob > self.today:
            return None
        return _age_on(self.dob, self.today)


def _age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def add_months(day: date, months: int) -> date:
    """`day` moved by whole calendar months; the 31st becomes the month's last day if needed."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    return date(year, month, 28)


def _as_day(value: Any) -> date | None:
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _anchor_day(text: str, env: _Env) -> date | None:
    parsed = parse_anchor(text)
    if parsed is None:
        return None
    name, amount, unit = parsed
    if name == "today":
        base: date | None = env.today
    elif name == DOB_FIELD:
        base = env.dob if not env.unborn else None
    else:
        base = _as_day(env.values.get(name))
    if base is None:
        return None
    return add_months(base, amount) if unit == "m" else base + timedelta(days=amount)


def person_key(row: Any) -> str | None:
    """How two rows of people lists are recognised as one person: the name, ignoring case,
    punctuation and spacing (dates of birth are often missing, so they are not required)."""
    if not isinstance(row, Mapping):
        return None
    name = row.get("name")
    if not isinstance(name, str):
        return None
    key = " ".join(re.sub(r"[^\w]+", " ", name.casefold()).split())
    return key or None


def shared_people(values: Mapping[str, Any], field: str, others: Sequence[str]) -> set[str]:
    """Person keys that appear both in people field `field` and in any of `others`."""
    mine = {person_key(r) for r in values.get(field) or ()} - {None}
    theirs: set[str | None] = set()
    for other in others:
        theirs |= {person_key(r) for r in values.get(other) or ()}
    return {k for k in mine & theirs if k is not None}


def _row_age_lt(rows: Any, limit: int, today: date) -> bool:
    for row in rows if isinstance(rows, list) else ():
        born = _as_day(row.get("date_of_birth")) if isinstance(row, Mapping) else None
        if born is not None and born <= today and _age_on(born, today) < limit:
            return True
    return False


def _holds_v2(cond: Condition, env: _Env) -> bool:
    """The version-2 operators (see docs/forms.md); false whenever a value is missing."""
    op = cond.op
    if op == "setting_empty":
        return not str(env.settings.get(str(cond.value), "") or "").strip()
    value = env.values.get(cond.field or "", _MISSING)
    if value is _MISSING:
        return False
    limit = cond.value
    if op in ("gt", "ge", "lt", "le", "exceeds_age_by"):
        if not isinstance(value, int) or not isinstance(limit, int):
            return False
        if op == "exceeds_age_by":
            age = env.age
            return age is not None and value - age > limit
        return {
            "gt": value > limit,
            "ge": value >= limit,
            "lt": value < limit,
            "le": value <= limit,
        }[op]
    if op in ("after", "before"):
        day = _as_day(value)
        anchor = _anchor_day(str(limit), env)
        if day is None or anchor is None:
            return False
        return day > anchor if op == "after" else day < anchor
    if op == "shares_person_with":
        others = [str(v) for v in limit] if isinstance(limit, tuple) else []
        return bool(shared_people(env.values, cond.field or "", others))
    if op == "any_row_age_lt":
        return isinstance(limit, int) and _row_age_lt(value, limit, env.today)
    if op == "differs_from_setting":
        setting = str(env.settings.get(str(limit), "") or "").strip()
        return (
            bool(setting) and isinstance(value, str) and not places.same_authority(value, setting)
        )
    if op == "outside_england":
        return isinstance(value, str) and places.outside_england(value) is bool(limit)
    return False


def _holds(cond: Condition, env: _Env) -> bool:
    op = cond.op
    if op == "equals":
        return _same(env.values.get(cond.field or "", _MISSING), cond.value)
    if op == "in":
        value = env.values.get(cond.field or "", _MISSING)
        options = cond.value if isinstance(cond.value, tuple) else ()
        return any(_same(value, option) for option in options)
    if op == "contains":
        value = env.values.get(cond.field or "", _MISSING)
        return isinstance(value, list) and cond.value in value
    if op == "is_set":
        return (cond.field in env.present) is bool(cond.value)
    if op == "all":
        return all(_holds(c, env) for c in cond.children)
    if op == "any":
        return any(_holds(c, env) for c in cond.children)
    if op == "not":
        return not _holds(cond.children[0], env)
    if op == "unborn":
        return env.unborn is bool(cond.value)
    if op == "prior_records":
        return env.has_prior is bool(cond.value)
    if op in _V2_OPERATORS:
        return _holds_v2(cond, env)
    # age operators: an unborn child counts as younger than any age
    if env.unborn:
        return op in ("age_lt", "age_le")
    age = env.age
    if age is None:
        return False
    if op == "age_between" and isinstance(cond.value, tuple):
        low, high = cond.value
        return isinstance(low, int) and isinstance(high, int) and low <= age <= high
    limit = cond.value
    if not isinstance(limit, int):
        return False
    if op == "age_lt":
        return age < limit
    if op == "age_le":
        return age <= limit
    if op == "age_gt":
        return age > limit
    if op == "age_ge":
        return age >= limit
    return False


# --------------------------------------------------------------------------- value checks


class _Invalid(Exception):
    """A value failed validation; `kind` is "invalid" or "rule"."""

    def __init__(self, message: str, kind: str = "invalid", keep: Any = _MISSING) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.keep = keep  # a cleaned value still usable by conditions, if any


def _q(label: str) -> str:
    return f"“{label}”"


def _show(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


_EXPECTED = {
    "text": "text",
    "longtext": "text",
    "date": 'a date written as text, like "2026-11-25"',
    "datetime": 'a date and time written as text, like "2026-11-25T14:05"',
    "bool": "true or false",
    "choice": "one option token, as text",
    "multichoice": "a list of option tokens",
    "checklist": "a list of option tokens",
    "nhs_number": 'the NHS number as text, like "943 476 5919"',
    "people": "a list of people, each an object",
    "person": "one person, as an object",
    "integer": "a whole number",
}

_REQUIRED_HOW = {
    "text": "Please fill it in.",
    "longtext": "Please fill it in.",
    "date": "Enter a date like 2026-11-25.",
    "datetime": "Enter a date and time like 2026-11-25T14:05.",
    "bool": "Answer yes or no.",
    "choice": "Choose one of the options.",
    "multichoice": "Tick at least one option.",
    "checklist": "Tick at least one item.",
    "nhs_number": "Enter the 10-digit NHS number.",
    "people": "Add at least one person.",
    "person": "Add the person's details.",
    "integer": "Enter a whole number.",
}


def _wrong_type(label: str, ftype: str, value: Any) -> _Invalid:
    return _Invalid(
        f"{_q(label)} should be {_EXPECTED.get(ftype, ftype)}, not {_json_kind(value)}. "
        "Replace it with an answer of that kind."
    )


def is_empty(value: Any) -> bool:
    """True for an unanswered value: None, blank text or an empty list/dict."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | dict):
        return len(value) == 0
    return False


def _check_text(label: str, value: Any, ftype: str, max_length: int | None) -> str:
    if not isinstance(value, str):
        raise _wrong_type(label, ftype, value)
    text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    multiline = ftype == "longtext"
    for index, ch in enumerate(text):
        if ch in "\n\t" and multiline:
            continue
        if unicodedata.category(ch) in ("Cc", "Cs"):
            if ch in "\n\t":
                raise _Invalid(
                    f"{_q(label)} must be on one line but contains a line break or tab "
                    f"(at character {index + 1}). Remove it."
                )
            raise _Invalid(
                f"{_q(label)} contains a hidden control character (at character {index + 1}), "
                "often left by copying and pasting. Remove it, or retype the text."
            )
    limit = max_length or DEFAULT_MAX_LENGTH.get(ftype, 200)
    if len(text) > limit:
        raise _Invalid(
            f"{_q(label)} is {len(text)} characters long; the limit is {limit}. "
            f"Shorten it by {len(text) - limit} characters."
        )
    return text


def _check_name(label: str, text: str) -> None:
    for ch in text:
        if ch in _NAME_EXTRA:
            continue
        if unicodedata.category(ch)[0] not in "LM":
            shown = "a space-like character" if ch.isspace() else f"“{ch}”"
            raise _Invalid(
                f"{_q(label)} can contain only letters, spaces, apostrophes (') and hyphens (-). "
                f"Remove {shown}."
            )
    if not any(unicodedata.category(ch)[0] == "L" for ch in text):
        raise _Invalid(f"{_q(label)} must contain at least one letter. Type the name.")


def _check_postcode(label: str, text: str) -> str:
    compact = "".join(text.split()).upper()
    if compact == "GIR0AA":
        return "GIR 0AA"
    match = _POSTCODE.match(compact)
    if not match:
        raise _Invalid(
            f"{_q(label)} “{_show(text)}” does not look like a UK postcode (for example LS11 5AB). "
            "Check it, or leave it empty if you do not know it."
        )
    return f"{match.group(1)} {match.group(2)}"


def _parse_date(label: str, value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise _wrong_type(label, "date", value)
    text = value.strip()
    iso = _ISO_DATE.match(text)
    uk = _UK_DATE.match(text) if iso is None else None
    if iso is None and uk is None:
        raise _Invalid(f"{_q(label)}: “{_show(text)}” is not a date. Use a date like 2026-11-25.")
    try:
        if iso is not None:
            return date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
        assert uk is not None
        return date(int(uk.group(3)), int(uk.group(2)), int(uk.group(1)))
    except ValueError:
        raise _Invalid(
            f"{_q(label)}: “{_show(text)}” is not a real date. Check the day and month, and use "
            "a date like 2026-11-25."
        ) from None


def _parse_datetime(label: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if not isinstance(value, str):
        raise _wrong_type(label, "datetime", value)
    text = value.strip()
    parts: tuple[int, int, int, int, int, int] | None = None
    iso = _ISO_DATETIME.match(text)
    if iso is not None:
        g = iso.groups()
        parts = (int(g[0]), int(g[1]), int(g[2]), int(g[3]), int(g[4]), int(g[5] or 0))
    else:
        uk = _UK_DATETIME.match(text)
        if uk is not None:
            g = uk.groups()
            parts = (int(g[2]), int(g[1]), int(g[0]), int(g[3]), int(g[4]), int(g[5] or 0))
    if parts is None:
        hint = " It needs a time as well." if _ISO_DATE.match(text) or _UK_DATE.match(text) else ""
        raise _Invalid(
            f"{_q(label)}: “{_show(text)}” is not a date and time.{hint} "
            "Use a date and time like 2026-11-25T14:05."
        )
    try:
        year, month, day, hour, minute, second = parts
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        raise _Invalid(
            f"{_q(label)}: “{_show(text)}” is not a real date and time. Check it, and use "
            "a date and time like 2026-11-25T14:05."
        ) from None


def _format_datetime(moment: datetime) -> str:
    spec = "minutes" if moment.second == 0 and moment.microsecond == 0 else "seconds"
    return moment.isoformat(timespec=spec)


def _tokens_text(field: Field) -> str:
    return ", ".join(f"{o.token} ({o.label})" for o in field.options)


def _check_token(field: Field, value: Any) -> str:
    if not isinstance(value, str):
        raise _wrong_type(field.label, field.type, value)
    token = value.strip()
    if token not in field.tokens:
        raise _Invalid(
            f"{_q(field.label)}: “{_show(value)}” is not one of the options. "
            f"Choose one of: {_tokens_text(field)}."
        )
    return token


def _check_tokens(field: Field, value: Any) -> list[str]:
    if not isinstance(value, list | tuple):
        raise _wrong_type(field.label, field.type, value)
    chosen: set[str] = set()
    for item in value:
        if not isinstance(item, str):
            raise _Invalid(
                f"{_q(field.label)} should be a list of option tokens, but one item is "
                f"{_json_kind(item)}. Remove it."
            )
        token = item.strip()
        if token not in field.tokens:
            raise _Invalid(
                f"{_q(field.label)}: “{_show(item)}” is not one of the options. "
                f"Use only: {_tokens_text(field)}."
            )
        chosen.add(token)
    return [t for t in field.tokens if t in chosen]


def _clean_row(field: Field, row: Any, number: int | None) -> dict[str, Any]:
    who = f"person {number} in {_q(field.label)}" if number is not None else _q(field.label)
    if not isinstance(row, Mapping):
        raise _Invalid(
            f"{who[0].upper()}{who[1:]} should be an object of details "
            f"({', '.join(c.id for c in field.columns)}), not {_json_kind(row)}. Re-enter it."
        )
    columns: dict[str, Column] = {c.id: c for c in field.columns}
    cleaned: dict[str, Any] = {}
    for key, value in row.items():
        column = columns.get(key) if isinstance(key, str) else None
        if column is None:
            raise _Invalid(
                f"{who[0].upper()}{who[1:]} has an unknown detail “{_show(key)}”. "
                f"Use only: {', '.join(columns)}."
            )
        if is_empty(value):
            continue
        label = f"{column.label} ({who})"
        if column.type == "bool":
            if not isinstance(value, bool):
                raise _wrong_type(label, "bool", value)
            cleaned[key] = value
        elif column.type == "date":
            cleaned[key] = _parse_date(label, value).isoformat()
        else:
            cleaned[key] = _check_text(label, value, column.type, column.max_length)
    if not cleaned:
        return cleaned
    for column in field.columns:
        if column.required and column.id not in cleaned:
            raise _Invalid(
                f"{who[0].upper()}{who[1:]} has no {column.label.lower()}. "
                f"Add it, or remove that person."
            )
    return cleaned


def _check_integer(field: Field, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _wrong_type(field.label, "integer", value)
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit() or not text.isascii():
            raise _Invalid(
                f"{_q(field.label)}: “{_show(text)}” is not a whole number. Type digits only, "
                "for example 19."
            )
        value = int(text)
    low, high = field.min_value, field.max_value
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"from {low} to {high}" if low is not None and high is not None else ""
        raise _Invalid(f"{_q(field.label)}: {value} is out of range; enter a number {bounds}.")
    return value


def _clean(field: Field, value: Any, today: date) -> Any:
    """The cleaned value (JSON-ready), or _MISSING if it amounts to no answer. Raises _Invalid."""
    ftype = field.type
    checks = field.checks
    if ftype in ("text", "longtext"):
        text = _check_text(field.label, value, ftype, field.max_length)
        if not text:
            return _MISSING
        if "person_name" in checks:
            _check_name(field.label, text)
        if "uk_postcode" in checks:
            text = _check_postcode(field.label, text)
        return text
    if ftype == "nhs_number":
        if not isinstance(value, str):
            raise _wrong_type(field.label, ftype, value)
        problem = nhs_number.problem(value)
        if problem is not None:
            raise _Invalid(problem)
        return nhs_number.normalise(value)
    if ftype == "bool":
        if not isinstance(value, bool):
            raise _wrong_type(field.label, ftype, value)
        if "must_be_true" in checks and value is not True:
            raise _Invalid(
                field.check_message or f"{_q(field.label)} must be ticked before you can finish.",
                kind="rule",
                keep=value,
            )
        return value
    if ftype == "choice":
        return _check_token(field, value)
    if ftype in ("multichoice", "checklist"):
        tokens = _check_tokens(field, value)
        if not tokens:
            return _MISSING
        if "all_ticked" in checks:
            missing = [o.label for o in field.options if o.token not in tokens]
            if missing:
                raise _Invalid(
                    field.check_message
                    or (
                        f"{_q(field.label)}: every item must be ticked. Explain the rest and tick "
                        f"them: {'; '.join(missing)}."
                    ),
                    kind="rule",
                    keep=tokens,
                )
        return tokens
    if ftype == "date":
        day = _parse_date(field.label, value)
        if "not_future" in checks and day > today:
            raise _Invalid(
                f"{_q(field.label)} {day.isoformat()} is in the future. Check the date"
                + (
                    "; for an unborn baby, choose “Unborn baby” as the reason there is no NHS "
                    "number and enter the expected date of delivery instead."
                    if field.id == DOB_FIELD
                    else "."
                )
            )
        if "after_today" in checks and day <= today:
            raise _Invalid(
                f"{_q(field.label)} must be after today ({today.isoformat()}). Choose a later date."
            )
        return day.isoformat()
    if ftype == "datetime":
        moment = _parse_datetime(field.label, value)
        if "not_future" in checks and moment.date() > today:
            raise _Invalid(f"{_q(field.label)} is in the future. Check the date and time.")
        return _format_datetime(moment)
    if ftype == "integer":
        return _check_integer(field, value)
    if ftype == "people":
        if not isinstance(value, list | tuple):
            raise _wrong_type(field.label, ftype, value)
        rows = [_clean_row(field, row, i + 1) for i, row in enumerate(value)]
        rows = [r for r in rows if r]
        return rows or _MISSING
    if ftype == "person":
        row = _clean_row(field, value, None)
        return row or _MISSING
    raise _Invalid(f"{_q(field.label)} has a type this version of gpshare cannot check ({ftype}).")


# --------------------------------------------------------------------------- evaluate


def _required_message(field: Field) -> str:
    if field.required_message:
        return field.required_message
    return f"{_q(field.label)} is required. {_REQUIRED_HOW.get(field.type, 'Please answer it.')}"


def evaluate(form: Form, answers: Mapping[str, Any], context: Context) -> Evaluation:
    """Everything the wizard needs for the current answers. Never raises on bad answers."""
    raw: Mapping[str, Any] = answers if isinstance(answers, Mapping) else {}
    env = _Env(context)
    errors: list[tuple[int, FieldError]] = []
    visible_steps: list[str] = []
    visible_fields: set[str] = set()
    unanswered: list[tuple[int, Field, str]] = []
    position: dict[str, tuple[int, str]] = {}
    order = 0

    for step in form.steps:
        step_visible = step.show_when is None or _holds(step.show_when, env)
        if step_visible:
            visible_steps.append(step.id)
        for field in step.fields:
            order += 1
            position[field.id] = (order, step.id)
            if not step_visible or (
                field.show_when is not None and not _holds(field.show_when, env)
            ):
                continue
            visible_fields.add(field.id)
            try:
                value = raw.get(field.id)
            except Exception:  # a hostile Mapping
                value = None
            if is_empty(value):
                unanswered.append((order, field, step.id))
                continue
            try:
                cleaned = _clean(field, value, context.today)
            except _Invalid as problem:
                env.present.add(field.id)
                errors.append((order, FieldError(field.id, step.id, problem.message, problem.kind)))
                if problem.keep is not _MISSING:
                    env.values[field.id] = problem.keep
                continue
            except Exception:  # defensive: a validator bug must not crash the wizard
                env.present.add(field.id)
                errors.append(
                    (
                        order,
                        FieldError(
                            field.id,
                            step.id,
                            f"{_q(field.label)} could not be checked. Re-enter the answer.",
                            "invalid",
                        ),
                    )
                )
                continue
            if cleaned is _MISSING:
                unanswered.append((order, field, step.id))
                continue
            env.present.add(field.id)
            env.values[field.id] = cleaned
            if field.id == DOB_FIELD and field.type == "date":
                env.dob = date.fromisoformat(cleaned)
            elif field.id == UNKNOWN_REASON_FIELD:
                env.unborn = cleaned == UNBORN_TOKEN

    for order_no, field, step_id in unanswered:
        if field.required or (field.required_when is not None and _holds(field.required_when, env)):
            errors.append(
                (order_no, FieldError(field.id, step_id, _required_message(field), "required"))
            )

    age = env.age
    if age is not None and age >= ADULT_AGE and DOB_FIELD in env.values:
        order_no, step_id = position[DOB_FIELD]
        errors.append(
            (
                order_no,
                FieldError(
                    DOB_FIELD,
                    step_id,
                    f"This date of birth makes the person {age}, an adult. Adult safeguarding is "
                    "outside this assessment: follow your practice's adult safeguarding procedure "
                    "(Care Act 2014) instead. If your concern is that an adult poses a risk to a "
                    "child, do this assessment about the child and name the adult under “Person "
                    "who may pose a risk to the child”.",
                    "rule",
                ),
            )
        )

    for rule in form.rules:
        if rule.field in visible_fields and _holds(rule.when, env):
            order_no, step_id = position[rule.field]
            errors.append((order_no, FieldError(rule.field, step_id, rule.message, "rule")))

    prompts_list: list[Prompt] = []
    for rule_p in form.prompts:
        if not _holds(rule_p.when, env):
            continue
        if rule_p.critical_when is not None and _holds(rule_p.critical_when, env):
            prompts_list.append(
                Prompt(rule_p.token, _fill_dates(rule_p.critical_message, env), "critical")
            )
        else:
            prompts_list.append(
                Prompt(rule_p.token, _fill_dates(rule_p.message, env), rule_p.severity)
            )
    prompts = tuple(prompts_list)
    outcome = Outcome(
        pathway=_first(form.outcome.pathway, env),
        consent_basis=_first(form.outcome.consent_basis, env),
        letter_required=(
            form.outcome.letter_required_when is not None
            and _holds(form.outcome.letter_required_when, env)
        ),
        prompts=tuple(p.token for p in prompts),
        letter_title=_first(form.outcome.letter_title, env),
        snomed_codes=_codes(form.outcome.snomed_codes, env),
        extended=form.outcome.extended,
    )
    errors.sort(key=lambda item: item[0])
    return Evaluation(
        visible_steps=tuple(visible_steps),
        visible_fields=frozenset(visible_fields),
        errors=tuple(e for _, e in errors),
        prompts=prompts,
        outcome=outcome,
        cleaned=dict(env.values),
        age=age,
        unborn=env.unborn,
    )


def format_day(day: date) -> str:
    """A date as people read it in a message: 25 December 2026."""
    return f"{day.day} {day:%B %Y}"


def _fill_dates(message: str, env: _Env) -> str:
    """Replace {field} / {field+1m} placeholders with the date, or a phrase when unknown."""

    def one(match: re.Match[str]) -> str:
        day = _anchor_day(match.group(0)[1:-1], env)
        return format_day(day) if day is not None else "the date, once you enter it"

    return PLACEHOLDER_RE.sub(one, message)


# Codes for each person who is not also named as posing a risk (data-dictionary-v2: the
# family-member code would tell an abuser with online access about the referral).
def _codes(rules: Sequence[CodeRule], env: _Env) -> tuple[dict[str, str], ...]:
    out: list[dict[str, str]] = []
    risky = shared_people(env.values, "person_posing_risk", ("parents_carers", "household_members"))
    for rule in rules:
        if not _holds(rule.when, env):
            continue
        if rule.for_ == "family_members":
            seen: set[str] = set()
            for field_id, role in (
                ("parents_carers", "parent or carer"),
                ("household_members", "household member"),
            ):
                for row in env.values.get(field_id) or ():
                    key = person_key(row)
                    if key is None or key in risky or key in seen:
                        continue
                    seen.add(key)
                    out.append(
                        {"code": rule.code, "term": rule.term, "for": f"{role}: {row['name']}"}
                    )
            continue
        whom = rule.for_
        if whom == "consent_person":
            whom = "expectant_mother" if env.unborn else "child"
        out.append({"code": rule.code, "term": rule.term, "for": whom.replace("_", " ")})
    return tuple(out)


def _first(rows: Sequence[Any], env: _Env) -> str | None:
    for row in rows:
        if _holds(row.when, env):
            token: str = row.token
            return token
    return None


# --------------------------------------------------------------------------- shapes


def check_answer_shapes(form: Form, answers: Mapping[str, Any]) -> list[FieldError]:
    """Structural problems in an answers object (e.g. the CLI's --answers JSON): unknown field
    ids, wrong JSON types and unknown option tokens. Does not check visibility or rules."""
    if not isinstance(answers, Mapping):
        return [
            FieldError(
                "",
                "",
                f"The answers should be an object mapping field ids to values, not "
                f'{_json_kind(answers)}. Wrap them as {{"field_id": value, …}}.',
                "invalid",
            )
        ]
    problems: list[FieldError] = []
    for key in list(answers.keys()):
        if not isinstance(key, str):
            problems.append(
                FieldError(
                    _show(key),
                    "",
                    f"Field ids must be text; {_show(key)} is not. Remove it.",
                    "invalid",
                )
            )
            continue
        if not form.has_field(key):
            problems.append(
                FieldError(
                    key,
                    "",
                    f"“{_show(key)}” is not a field of form {form.id} version {form.version}. "
                    "Check the spelling against the data dictionary, or remove it.",
                    "invalid",
                )
            )
            continue
        try:
            value = answers[key]
        except Exception:
            value = None
        field = form.field(key)
        step = form.step_of(key).id
        message = _shape_problem(field, value)
        if message is not None:
            problems.append(FieldError(key, step, message, "invalid"))
    return problems


def _shape_problem(field: Field, value: Any) -> str | None:
    if value is None:
        return None
    ftype = field.type
    expected = f"Field “{field.id}” expects {_EXPECTED.get(ftype, ftype)}"
    if ftype in ("text", "longtext", "date", "datetime", "nhs_number"):
        if isinstance(value, str) or (ftype == "date" and isinstance(value, date)):
            return None
        return f"{expected}, but got {_json_kind(value)}. Give it as a JSON string."
    if ftype == "bool":
        if isinstance(value, bool):
            return None
        return f"{expected}, but got {_json_kind(value)} ({_show(value)}). Use true or false."
    if ftype == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return None
        return (
            f"{expected}, but got {_json_kind(value)} ({_show(value)}). Give a number such as 19."
        )
    if ftype == "choice":
        if not isinstance(value, str):
            return (
                f"{expected}, but got {_json_kind(value)}. Give one of: {', '.join(field.tokens)}."
            )
        if value.strip() and value.strip() not in field.tokens:
            return (
                f"Field “{field.id}”: “{_show(value)}” is not an option. "
                f"Use one of: {', '.join(field.tokens)}."
            )
        return None
    if ftype in ("multichoice", "checklist"):
        if not isinstance(value, list | tuple):
            return f'{expected}, but got {_json_kind(value)}. Give a list such as ["{field.tokens[0]}"].'
        for item in value:
            if not isinstance(item, str):
                return f"{expected}, but one item is {_json_kind(item)}. Use only: {', '.join(field.tokens)}."
            if item.strip() not in field.tokens:
                return (
                    f"Field “{field.id}”: “{_show(item)}” is not an option. "
                    f"Use only: {', '.join(field.tokens)}."
                )
        return None
    if ftype == "people":
        if not isinstance(value, list | tuple):
            return f"{expected}, but got {_json_kind(value)}. Give a list of objects."
        for number, row in enumerate(value, start=1):
            problem = _row_shape_problem(field, row, f"person {number}")
            if problem:
                return problem
        return None
    if ftype == "person":
        return _row_shape_problem(field, value, "the person")
    return None


def _row_shape_problem(field: Field, row: Any, who: str) -> str | None:
    columns = {c.id: c for c in field.columns}
    if not isinstance(row, Mapping):
        return (
            f"Field “{field.id}”: {who} should be an object with keys "
            f"{', '.join(columns)}, but got {_json_kind(row)}."
        )
    for key, value in row.items():
        column = columns.get(key) if isinstance(key, str) else None
        if column is None:
            return f"Field “{field.id}”: {who} has an unknown key “{_show(key)}”. Use only: {', '.join(columns)}."
        if value is None:
            continue
        if column.type == "bool" and not isinstance(value, bool):
            return f"Field “{field.id}”: {who}'s “{key}” expects true or false, not {_json_kind(value)}."
        if column.type != "bool" and not isinstance(value, str):
            return f"Field “{field.id}”: {who}'s “{key}” expects text, not {_json_kind(value)}."
    return None
