"""Assessment forms as data: load and validate `forms/*.toml` into a typed, immutable model.

No Qt, no SQL. The file schema and the condition language are documented in docs/forms.md.
A completed record stores the form id and version it was made with; `load_form_by_id` finds
that exact version again so the record is always shown with the questions it answered.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from functools import lru_cache
from pathlib import Path
from typing import Any

FIELD_TYPES: tuple[str, ...] = (
    "text",
    "longtext",
    "date",
    "datetime",
    "bool",
    "choice",
    "multichoice",
    "nhs_number",
    "person",
    "people",
    "checklist",
    "integer",
)
CHOICE_TYPES = frozenset({"choice", "multichoice", "checklist"})
LIST_CHOICE_TYPES = frozenset({"multichoice", "checklist"})
PEOPLE_TYPES = frozenset({"person", "people"})
TEXT_TYPES = frozenset({"text", "longtext"})
COLUMN_TYPES: tuple[str, ...] = ("text", "longtext", "bool", "date")

# Named value checks a field may ask for, and the field types each applies to.
CHECKS: dict[str, frozenset[str]] = {
    "person_name": frozenset({"text"}),
    "uk_postcode": frozenset({"text"}),
    "not_future": frozenset({"date", "datetime"}),
    "after_today": frozenset({"date"}),
    "must_be_true": frozenset({"bool"}),
    "all_ticked": frozenset({"checklist", "multichoice"}),
}

SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")

# Field operators added for form v2: integer fields; date/datetime fields against an anchor
# such as "today+7d"; people fields; text fields against practice settings or places.
V2_FIELD_OPERATORS: tuple[str, ...] = (
    "gt",
    "ge",
    "lt",
    "le",
    "exceeds_age_by",
    "after",
    "before",
    "shares_person_with",
    "any_row_age_lt",
    "differs_from_setting",
    "outside_england",
)
FIELD_OPERATORS: tuple[str, ...] = ("equals", "in", "contains", "is_set", *V2_FIELD_OPERATORS)
LOGIC_OPERATORS: tuple[str, ...] = ("all", "any", "not")
AGE_OPERATORS: tuple[str, ...] = ("age_lt", "age_le", "age_gt", "age_ge", "age_between")
CONTEXT_OPERATORS: tuple[str, ...] = ("unborn", "prior_records", "setting_empty")
# `ref` names a condition of the form's [conditions] table; it is replaced at load time.
REF_OPERATOR = "ref"
OPERATORS: tuple[str, ...] = FIELD_OPERATORS + LOGIC_OPERATORS + AGE_OPERATORS + CONTEXT_OPERATORS

# "today", or a date field id, optionally plus/minus a number of days or months.
ANCHOR_RE = re.compile(r"^(today|[a-z][a-z0-9]*(?:_[a-z0-9]+)*)(?:([+-])(\d{1,4})([dm]))?$")
# A date placeholder in a prompt message: {field_id} or {field_id+1m}.
PLACEHOLDER_RE = re.compile(r"\{([a-z][a-z0-9_]*)(?:([+-])(\d{1,4})([dm]))?\}")
CODE_FOR: tuple[str, ...] = ("child", "expectant_mother", "consent_person", "family_members")
SCTID_RE = re.compile(r"^[0-9]{6,18}$")
TOKEN_RE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
FORM_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")

ENV_FORMS_DIR = "GPSHARE_FORMS_DIR"

ConditionValue = str | bool | int | tuple[str | bool | int, ...] | None


def parse_anchor(text: str) -> tuple[str, int, str] | None:
    """Split an anchor such as "today+7d" or "date_of_birth-10m" into (name, signed n, unit)."""
    match = ANCHOR_RE.match(text)
    if match is None:
        return None
    name, sign, number, unit = match.groups()
    if number is None:
        return name, 0, "d"
    amount = int(number)
    return name, -amount if sign == "-" else amount, unit


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Option:
    """One allowed answer of a choice field: the stored token and what the user sees."""

    token: str
    label: str
    help: str = ""


@dataclass(frozen=True)
class Column:
    """One detail recorded for each person in a `people` / `person` field."""

    id: str
    label: str
    type: str
    required: bool = False
    max_length: int | None = None


@dataclass(frozen=True)
class Condition:
    """A node of the condition language (see docs/forms.md). Never evaluated with eval.

    `op` is one of OPERATORS. Field operators carry `field` and `value` (`in` holds a tuple);
    `all` / `any` / `not` carry `children`; age operators carry an int (or a (lo, hi) tuple for
    `age_between`); `unborn` / `prior_records` carry a bool.
    """

    op: str
    field: str | None = None
    value: ConditionValue = None
    children: tuple[Condition, ...] = ()

    def fields(self) -> frozenset[str]:
        """Every field id this condition reads."""
        found: set[str] = set()
        stack: list[Condition] = [self]
        while stack:
            node = stack.pop()
            if node.field is not None:
                found.add(node.field)
            if node.op in ("after", "before") and isinstance(node.value, str):
                anchor = parse_anchor(node.value)
                if anchor is not None and anchor[0] != "today":
                    found.add(anchor[0])
            if node.op == "shares_person_with" and isinstance(node.value, tuple):
                found.update(str(v) for v in node.value)
            stack.extend(node.children)
        return frozenset(found)

    def uses_age(self) -> bool:
        """True if the condition depends on the child's age or being unborn."""
        if self.op in AGE_OPERATORS or self.op in ("unborn", "exceeds_age_by", "any_row_age_lt"):
            return True
        return any(child.uses_age() for child in self.children)

    def to_data(self) -> dict[str, Any]:
        """The condition as it is written in a form file (a TOML inline table)."""
        if self.op in ("all", "any"):
            return {self.op: [c.to_data() for c in self.children]}
        if self.op == "not":
            return {"not": self.children[0].to_data()}
        value: Any = list(self.value) if isinstance(self.value, tuple) else self.value
        if self.field is not None:
            return {"field": self.field, self.op: value}
        return {self.op: value}

    def describe(self) -> str:
        """A short plain-English reading, for developer tools and docs."""
        if self.op == "all":
            return "(" + " and ".join(c.describe() for c in self.children) + ")"
        if self.op == "any":
            return "(" + " or ".join(c.describe() for c in self.children) + ")"
        if self.op == "not":
            return "not " + self.children[0].describe()
        if self.op == "equals":
            return f"{self.field} = {self.value!r}"
        if self.op == "in":
            return f"{self.field} in {self.value!r}"
        if self.op == "contains":
            return f"{self.field} includes {self.value!r}"
        if self.op == "is_set":
            return f"{self.field} is {'answered' if self.value else 'not answered'}"
        if self.op in ("gt", "ge", "lt", "le"):
            symbol = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}[self.op]
            return f"{self.field} {symbol} {self.value}"
        if self.op in ("after", "before"):
            return f"{self.field} is {self.op} {self.value}"
        if self.field is not None:
            return f"{self.field} {self.op.replace('_', ' ')} {self.value!r}"
        if self.op == "age_between" and isinstance(self.value, tuple):
            return f"age {self.value[0]}–{self.value[1]}"
        if self.op in AGE_OPERATORS:
            symbol = {"age_lt": "<", "age_le": "≤", "age_gt": ">", "age_ge": "≥"}[self.op]
            return f"age {symbol} {self.value}"
        return f"{self.op} is {self.value}"


@dataclass(frozen=True)
class Source:
    """A guidance source. `paragraphs` is given only where domain.md marks the text verified."""

    document: str
    year: str
    paragraphs: str | None = None

    def cite(self) -> str:
        """E.g. "GMC, Protecting children and young people (2012), paragraphs 32–35"."""
        text = self.document
        if not self.document.rstrip().endswith(self.year):
            text += f" ({self.year})"
        if self.paragraphs:
            plural = any(sep in self.paragraphs for sep in ("–", "-", ",", "and"))
            text += f", {'paragraphs' if plural else 'paragraph'} {self.paragraphs}"
        return text


@dataclass(frozen=True)
class Field:
    """One question of a form."""

    id: str
    label: str
    type: str
    help: str = ""
    options: tuple[Option, ...] = ()
    required: bool = False
    required_when: Condition | None = None
    show_when: Condition | None = None
    max_length: int | None = None
    columns: tuple[Column, ...] = ()
    checks: tuple[str, ...] = ()
    required_message: str = ""
    check_message: str = ""
    min_value: int | None = None
    max_value: int | None = None

    @property
    def tokens(self) -> tuple[str, ...]:
        return tuple(o.token for o in self.options)

    def option_label(self, token: str) -> str:
        """The label for `token`; an unknown token is returned as it is (never hidden)."""
        for option in self.options:
            if option.token == token:
                return option.label
        return token

    def column(self, column_id: str) -> Column:
        for col in self.columns:
            if col.id == column_id:
                return col
        raise KeyError(column_id)


@dataclass(frozen=True)
class Step:
    """A page of the wizard: guidance, sources and its fields."""

    id: str
    title: str
    guidance: str
    sources: tuple[Source, ...]
    fields: tuple[Field, ...]
    show_when: Condition | None = None


@dataclass(frozen=True)
class Rule:
    """A cross-field rule: when `when` holds, the answers are wrong; the error goes on `field`."""

    id: str
    field: str
    when: Condition
    message: str


@dataclass(frozen=True)
class PromptRule:
    """A prominent prompt shown (and stored in the outcome) when `when` holds."""

    token: str
    severity: str
    message: str
    when: Condition
    critical_when: Condition | None = None
    critical_message: str = ""


@dataclass(frozen=True)
class OutcomeRule:
    """One row of an outcome table: the first row whose `when` holds gives the token."""

    token: str
    when: Condition


@dataclass(frozen=True)
class CodeRule:
    """A clinical code to suggest when `when` holds; `for_` says whose record it goes in."""

    code: str
    term: str
    for_: str
    when: Condition


@dataclass(frozen=True)
class OutcomeSpec:
    pathway: tuple[OutcomeRule, ...] = ()
    consent_basis: tuple[OutcomeRule, ...] = ()
    letter_required_when: Condition | None = None
    letter_title: tuple[OutcomeRule, ...] = ()
    snomed_codes: tuple[CodeRule, ...] = ()

    @property
    def extended(self) -> bool:
        """True when the form defines the version-2 outcome keys (letter_title, snomed_codes)."""
        return bool(self.letter_title or self.snomed_codes)


@dataclass(frozen=True)
class Form:
    """A loaded, validated assessment form."""

    id: str
    version: int
    jurisdiction: str
    title: str
    steps: tuple[Step, ...]
    path: Path
    rules: tuple[Rule, ...] = ()
    prompts: tuple[PromptRule, ...] = ()
    outcome: OutcomeSpec = dc_field(default_factory=OutcomeSpec)
    conditions: Mapping[str, Condition] = dc_field(default_factory=dict)
    _fields: dict[str, tuple[Field, Step]] = dc_field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        index: dict[str, tuple[Field, Step]] = {}
        for step in self.steps:
            for fld in step.fields:
                index[fld.id] = (fld, step)
        object.__setattr__(self, "_fields", index)

    def field(self, field_id: str) -> Field:
        """The field with this id; KeyError if the form has none."""
        return self._fields[field_id][0]

    def has_field(self, field_id: str) -> bool:
        return field_id in self._fields

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def all_fields(self) -> tuple[Field, ...]:
        """Every field in form order."""
        return tuple(f for f, _ in self._fields.values())

    def step_of(self, field_id: str) -> Step:
        """The step holding the field; KeyError if the form has none."""
        return self._fields[field_id][1]

    def option_label(self, field_id: str, token: str) -> str:
        return self.field(field_id).option_label(token)

    @property
    def key(self) -> tuple[str, int]:
        return (self.id, self.version)


class FormError(Exception):
    """A form file is missing, unreadable or malformed."""

    def __init__(self, file: str, field: str | None, problem: str) -> None:
        self.file = file
        self.field = field
        self.problem = problem
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.field:
            return f"{self.file}: field '{self.field}': {self.problem}"
        return f"{self.file}: {self.problem}"


# --------------------------------------------------------------------------- loader

_TOP_KEYS = frozenset(
    {"id", "version", "jurisdiction", "title", "steps", "rules", "prompts", "outcome", "conditions"}
)
_STEP_KEYS = frozenset({"id", "title", "guidance", "sources", "fields", "show_when"})
_FIELD_KEYS = frozenset(
    {
        "id",
        "label",
        "type",
        "help",
        "options",
        "required",
        "required_when",
        "show_when",
        "max_length",
        "columns",
        "checks",
        "required_message",
        "check_message",
        "min",
        "max",
    }
)
_OPTION_KEYS = frozenset({"token", "label", "help"})
_COLUMN_KEYS = frozenset({"id", "label", "type", "required", "max_length"})
_SOURCE_KEYS = frozenset({"document", "year", "paragraphs"})
_RULE_KEYS = frozenset({"id", "field", "when", "message"})
_PROMPT_KEYS = frozenset(
    {"token", "severity", "message", "when", "critical_when", "critical_message"}
)
_OUTCOME_KEYS = frozenset(
    {"pathway", "consent_basis", "letter_required_when", "letter_title", "snomed_codes"}
)
_CODE_KEYS = frozenset({"code", "term", "for", "when"})
_OUTCOME_ROW_KEYS = frozenset({"token", "when"})


class _Loader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = path.name
        self.fields: dict[str, Field] = {}
        self.order: dict[str, int] = {}
        self.step_of: dict[str, int] = {}
        self.named: dict[str, Condition] = {}

    # -- helpers
    def fail(self, field_id: str | None, problem: str) -> FormError:
        return FormError(self.file, field_id, problem)

    def check_keys(
        self, table: Mapping[str, Any], allowed: frozenset[str], where: str, fid: str | None
    ) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(
                    fid, f"{where}unknown key '{key}' (allowed: {', '.join(sorted(allowed))})"
                )

    def text(
        self, table: Mapping[str, Any], key: str, where: str, fid: str | None, *, required: bool
    ) -> str:
        value = table.get(key)
        if value is None:
            if required:
                raise self.fail(fid, f"{where}missing '{key}'")
            return ""
        if not isinstance(value, str):
            raise self.fail(fid, f"{where}'{key}' must be text, not {_kind(value)}")
        if required and not value.strip():
            raise self.fail(fid, f"{where}'{key}' must not be empty")
        return value.strip()

    def table(self, value: Any, where: str, fid: str | None) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(fid, f"{where}must be a table, not {_kind(value)}")
        return value

    def table_list(self, value: Any, where: str, fid: str | None) -> list[Mapping[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(fid, f"{where}must be a list of tables, not {_kind(value)}")
        return [self.table(item, f"{where}item {i + 1} ", fid) for i, item in enumerate(value)]

    # -- entry point
    def load(self) -> Form:
        try:
            raw_bytes = self.path.read_bytes()
        except OSError as exc:
            raise self.fail(None, f"cannot be read ({exc.strerror or exc})") from exc
        try:
            data = tomllib.loads(raw_bytes.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise self.fail(None, f"is not UTF-8 text (byte {exc.start})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise self.fail(None, f"is not valid TOML: {exc}") from exc

        self.check_keys(data, _TOP_KEYS, "", None)
        form_id = self.text(data, "id", "", None, required=True)
        if not FORM_ID_RE.match(form_id):
            raise self.fail(
                None, f"form id '{form_id}' must be lower case letters, digits and hyphens"
            )
        if "version" not in data:
            raise self.fail(None, "missing 'version'")
        version = data["version"]
        if not isinstance(version, int) or isinstance(version, bool):
            raise self.fail(None, f"'version' must be a whole number, not {_kind(version)}")
        if version < 1:
            raise self.fail(None, "'version' must be 1 or more")
        title = self.text(data, "title", "", None, required=True)
        jurisdiction = self.text(data, "jurisdiction", "", None, required=False)

        raw_steps = self.table_list(data.get("steps"), "'steps' ", None)
        if not raw_steps:
            raise self.fail(None, "has no steps: add at least one [[steps]] table")

        # Pass 1: field shapes (ids, types, options) so that conditions can be checked.
        step_ids: set[str] = set()
        parsed_fields: list[list[tuple[Mapping[str, Any], Field]]] = []
        for s_index, step in enumerate(raw_steps):
            sid = step.get("id")
            where = f"step {s_index + 1}: "
            self.check_keys(
                step, _STEP_KEYS, where if not isinstance(sid, str) else f"step '{sid}': ", None
            )
            sid = self.text(step, "id", where, None, required=True)
            where = f"step '{sid}': "
            if not TOKEN_RE.match(sid):
                raise self.fail(None, f"{where}step id is not a lower_snake_case token")
            if sid in step_ids:
                raise self.fail(None, f"duplicate step id '{sid}'")
            step_ids.add(sid)
            raw_fields = self.table_list(step.get("fields"), f"{where}'fields' ", None)
            if not raw_fields:
                raise self.fail(None, f"{where}has no fields")
            step_fields: list[tuple[Mapping[str, Any], Field]] = []
            for raw_field in raw_fields:
                fld = self.field_shape(raw_field, where)
                self.order[fld.id] = len(self.order)
                self.step_of[fld.id] = s_index
                self.fields[fld.id] = fld
                step_fields.append((raw_field, fld))
            parsed_fields.append(step_fields)

        # Named conditions: each may use those defined above it (so there are no cycles).
        raw_named = data.get("conditions")
        if raw_named is not None:
            for name, raw_cond in self.table(raw_named, "'conditions' ", None).items():
                if not TOKEN_RE.match(name):
                    raise self.fail(
                        None, f"condition name '{name}' is not a lower_snake_case token"
                    )
                self.named[name] = self.condition(raw_cond, f"condition '{name}'", None)

        # Pass 2: conditions, steps.
        steps: list[Step] = []
        for s_index, step in enumerate(raw_steps):
            sid = str(step["id"])
            where = f"step '{sid}': "
            fields_out: list[Field] = []
            for raw_field, fld in parsed_fields[s_index]:
                show = self.condition_opt(raw_field.get("show_when"), "show_when", fld.id)
                if show is not None:
                    for ref in show.fields():
                        if self.order[ref] >= self.order[fld.id]:
                            raise self.fail(
                                fld.id,
                                f"show_when refers to field '{ref}', which does not come before "
                                "it; a field can only depend on fields earlier in the form",
                            )
                req_when = self.condition_opt(
                    raw_field.get("required_when"), "required_when", fld.id
                )
                fields_out.append(
                    Field(
                        id=fld.id,
                        label=fld.label,
                        type=fld.type,
                        help=fld.help,
                        options=fld.options,
                        required=fld.required,
                        required_when=req_when,
                        show_when=show,
                        max_length=fld.max_length,
                        columns=fld.columns,
                        checks=fld.checks,
                        required_message=fld.required_message,
                        check_message=fld.check_message,
                        min_value=fld.min_value,
                        max_value=fld.max_value,
                    )
                )
            step_show = self.condition_opt(step.get("show_when"), f"{where}show_when", None)
            if step_show is not None:
                for ref in step_show.fields():
                    if self.step_of[ref] >= s_index:
                        raise self.fail(
                            None,
                            f"{where}show_when refers to field '{ref}', which is not in an "
                            "earlier step",
                        )
            sources = tuple(
                self.source(src, f"{where}source {i + 1}: ")
                for i, src in enumerate(
                    self.table_list(step.get("sources"), f"{where}'sources' ", None)
                )
            )
            steps.append(
                Step(
                    id=sid,
                    title=self.text(step, "title", where, None, required=True),
                    guidance=self.text(step, "guidance", where, None, required=False),
                    sources=sources,
                    fields=tuple(fields_out),
                    show_when=step_show,
                )
            )

        rules = self.rules(data.get("rules"))
        prompts = self.prompts(data.get("prompts"))
        outcome = self.outcome(data.get("outcome"))
        return Form(
            id=form_id,
            version=version,
            jurisdiction=jurisdiction,
            title=title,
            steps=tuple(steps),
            path=self.path,
            rules=rules,
            prompts=prompts,
            outcome=outcome,
            conditions=dict(self.named),
        )

    # -- fields
    def field_shape(self, raw: Mapping[str, Any], step_where: str) -> Field:
        fid_raw = raw.get("id")
        if not isinstance(fid_raw, str) or not fid_raw.strip():
            raise self.fail(None, f"{step_where}a field has no 'id'")
        fid = fid_raw.strip()
        if not TOKEN_RE.match(fid):
            raise self.fail(fid, "field id is not a lower_snake_case token")
        if fid in self.fields:
            raise self.fail(
                fid, "duplicate field id (each field id may appear only once in a form)"
            )
        self.check_keys(raw, _FIELD_KEYS, "", fid)
        label = self.text(raw, "label", "", fid, required=True)
        ftype = self.text(raw, "type", "", fid, required=True)
        if ftype not in FIELD_TYPES:
            raise self.fail(
                fid, f"unknown field type '{ftype}' (use one of: {', '.join(FIELD_TYPES)})"
            )
        required = raw.get("required", False)
        if not isinstance(required, bool):
            raise self.fail(fid, f"'required' must be true or false, not {_kind(required)}")

        options: list[Option] = []
        if "options" in raw:
            if ftype not in CHOICE_TYPES:
                raise self.fail(
                    fid,
                    f"'options' only apply to choice, multichoice and checklist fields, not {ftype}",
                )
            seen: set[str] = set()
            for i, opt in enumerate(self.table_list(raw["options"], "'options' ", fid)):
                self.check_keys(opt, _OPTION_KEYS, f"option {i + 1}: ", fid)
                token = opt.get("token")
                if not isinstance(token, str):
                    raise self.fail(fid, f"option {i + 1} has no text 'token'")
                if not TOKEN_RE.match(token):
                    raise self.fail(fid, f"option token '{token}' is not a lower_snake_case token")
                if token in seen:
                    raise self.fail(fid, f"option token '{token}' appears twice")
                seen.add(token)
                options.append(
                    Option(
                        token=token,
                        label=self.text(opt, "label", f"option '{token}': ", fid, required=True),
                        help=self.text(opt, "help", f"option '{token}': ", fid, required=False),
                    )
                )
        if ftype in CHOICE_TYPES and not options:
            raise self.fail(fid, f"a {ftype} field needs 'options' (a list of {{token, label}})")

        columns: list[Column] = []
        if "columns" in raw:
            if ftype not in PEOPLE_TYPES:
                raise self.fail(
                    fid, f"'columns' only apply to people and person fields, not {ftype}"
                )
            col_ids: set[str] = set()
            for i, col in enumerate(self.table_list(raw["columns"], "'columns' ", fid)):
                self.check_keys(col, _COLUMN_KEYS, f"column {i + 1}: ", fid)
                cid = self.text(col, "id", f"column {i + 1}: ", fid, required=True)
                if not TOKEN_RE.match(cid):
                    raise self.fail(fid, f"column id '{cid}' is not a lower_snake_case token")
                if cid in col_ids:
                    raise self.fail(fid, f"column id '{cid}' appears twice")
                col_ids.add(cid)
                ctype = self.text(col, "type", f"column '{cid}': ", fid, required=True)
                if ctype not in COLUMN_TYPES:
                    raise self.fail(
                        fid,
                        f"column '{cid}': unknown type '{ctype}' (use one of: {', '.join(COLUMN_TYPES)})",
                    )
                creq = col.get("required", False)
                if not isinstance(creq, bool):
                    raise self.fail(fid, f"column '{cid}': 'required' must be true or false")
                columns.append(
                    Column(
                        id=cid,
                        label=self.text(col, "label", f"column '{cid}': ", fid, required=True),
                        type=ctype,
                        required=creq,
                        max_length=self.max_length(
                            col, fid, f"column '{cid}': ", ctype in TEXT_TYPES
                        ),
                    )
                )
        if ftype in PEOPLE_TYPES and not columns:
            raise self.fail(fid, f"a {ftype} field needs 'columns' (a list of {{id, label, type}})")

        checks_raw = raw.get("checks", [])
        if not isinstance(checks_raw, list) or not all(isinstance(c, str) for c in checks_raw):
            raise self.fail(fid, "'checks' must be a list of check names")
        for check in checks_raw:
            if check not in CHECKS:
                raise self.fail(fid, f"unknown check '{check}' (use one of: {', '.join(CHECKS)})")
            if ftype not in CHECKS[check]:
                raise self.fail(fid, f"check '{check}' does not apply to a {ftype} field")

        bounds: dict[str, int | None] = {"min": None, "max": None}
        for key in bounds:
            if key in raw:
                if ftype != "integer":
                    raise self.fail(fid, f"'{key}' only applies to integer fields, not {ftype}")
                if not _is_int(raw[key]):
                    raise self.fail(fid, f"'{key}' must be a whole number, not {_kind(raw[key])}")
                bounds[key] = int(raw[key])
        low, high = bounds["min"], bounds["max"]
        if low is not None and high is not None and low > high:
            raise self.fail(fid, f"'min' ({low}) is more than 'max' ({high})")

        return Field(
            id=fid,
            label=label,
            type=ftype,
            min_value=low,
            max_value=high,
            help=self.text(raw, "help", "", fid, required=False),
            options=tuple(options),
            required=required,
            max_length=self.max_length(raw, fid, "", ftype in TEXT_TYPES),
            columns=tuple(columns),
            checks=tuple(checks_raw),
            required_message=self.text(raw, "required_message", "", fid, required=False),
            check_message=self.text(raw, "check_message", "", fid, required=False),
        )

    def max_length(self, raw: Mapping[str, Any], fid: str, where: str, allowed: bool) -> int | None:
        if "max_length" not in raw:
            return None
        if not allowed:
            raise self.fail(fid, f"{where}'max_length' only applies to text and longtext")
        value = raw["max_length"]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.fail(fid, f"{where}'max_length' must be a whole number of 1 or more")
        return value

    def source(self, raw: Mapping[str, Any], where: str) -> Source:
        self.check_keys(raw, _SOURCE_KEYS, where, None)
        year = raw.get("year")
        if isinstance(year, int) and not isinstance(year, bool):
            year = str(year)
        if not isinstance(year, str) or not year.strip():
            raise self.fail(None, f"{where}missing 'year'")
        paragraphs = raw.get("paragraphs")
        if paragraphs is not None and (not isinstance(paragraphs, str) or not paragraphs.strip()):
            raise self.fail(None, f"{where}'paragraphs' must be text such as \"32–35\"")
        return Source(
            document=self.text(raw, "document", where, None, required=True),
            year=year.strip(),
            paragraphs=paragraphs.strip() if isinstance(paragraphs, str) else None,
        )

    # -- conditions
    def condition_opt(self, raw: Any, where: str, fid: str | None) -> Condition | None:
        if raw is None:
            return None
        return self.condition(raw, where, fid)

    def condition(self, raw: Any, where: str, fid: str | None) -> Condition:
        if not isinstance(raw, dict):
            raise self.fail(
                fid, f'{where}: a condition must be a table such as {{field = "x", equals = true}}'
            )
        if REF_OPERATOR in raw:
            name = raw[REF_OPERATOR]
            if len(raw) != 1 or not isinstance(name, str):
                raise self.fail(fid, f'{where}: use {{ref = "<condition name>"}} on its own')
            if name not in self.named:
                raise self.fail(
                    fid,
                    f"{where}: unknown condition '{name}' (define it in [conditions] above "
                    "the place that uses it)",
                )
            return self.named[name]
        keys = [k for k in raw if k != "field"]
        if len(keys) != 1:
            raise self.fail(
                fid,
                f"{where}: a condition needs exactly one operator, found {keys or 'none'} "
                f"(operators: {', '.join(OPERATORS)})",
            )
        op = keys[0]
        value = raw[op]
        if op not in OPERATORS:
            raise self.fail(
                fid,
                f"{where}: unknown condition operator '{op}' (use one of: {', '.join(OPERATORS)})",
            )
        if op in FIELD_OPERATORS:
            ref = raw.get("field")
            if not isinstance(ref, str):
                raise self.fail(fid, f"{where}: operator '{op}' needs field = \"<field id>\"")
            target = self.fields.get(ref)
            if target is None:
                raise self.fail(fid, f"{where}: condition refers to unknown field '{ref}'")
            return Condition(
                op=op, field=ref, value=self.field_value(op, value, target, where, fid)
            )
        if "field" in raw:
            raise self.fail(fid, f"{where}: operator '{op}' does not take a field")
        if op in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise self.fail(fid, f"{where}: '{op}' needs a non-empty list of conditions")
            return Condition(op=op, children=tuple(self.condition(v, where, fid) for v in value))
        if op == "not":
            return Condition(op=op, children=(self.condition(value, where, fid),))
        if op == "age_between":
            if (
                not isinstance(value, list)
                or len(value) != 2
                or not all(_is_int(v) for v in value)
                or value[0] > value[1]
            ):
                raise self.fail(
                    fid, f"{where}: 'age_between' needs [lowest, highest] whole numbers"
                )
            return Condition(op=op, value=(int(value[0]), int(value[1])))
        if op in AGE_OPERATORS:
            if not _is_int(value) or not 0 <= value <= 150:
                raise self.fail(fid, f"{where}: '{op}' needs a whole number of years")
            return Condition(op=op, value=int(value))
        if op == "setting_empty":
            if not isinstance(value, str) or not TOKEN_RE.match(value):
                raise self.fail(fid, f"{where}: 'setting_empty' needs a setting name")
            return Condition(op=op, value=value)
        # unborn / prior_records
        if not isinstance(value, bool):
            raise self.fail(fid, f"{where}: '{op}' must be true or false")
        return Condition(op=op, value=value)

    def field_value(
        self, op: str, value: Any, target: Field, where: str, fid: str | None
    ) -> ConditionValue:
        ref = target.id
        special = self.special_value(op, value, target, where, fid)
        if special is not _NO_VALUE:
            return special
        if op == "is_set":
            if not isinstance(value, bool):
                raise self.fail(fid, f"{where}: 'is_set' must be true or false")
            return value
        if op == "contains":
            if target.type not in LIST_CHOICE_TYPES:
                raise self.fail(
                    fid,
                    f"{where}: 'contains' needs a multichoice or checklist field; '{ref}' is {target.type}",
                )
            if not isinstance(value, str) or value not in target.tokens:
                raise self.fail(fid, f"{where}: '{value}' is not an option token of '{ref}'")
            return value
        values = value if op == "in" else [value]
        if op == "in" and (not isinstance(value, list) or not value):
            raise self.fail(fid, f"{where}: 'in' needs a non-empty list of values")
        out: list[str | bool | int] = []
        for v in values:
            if target.type == "bool":
                if not isinstance(v, bool):
                    raise self.fail(
                        fid, f"{where}: '{ref}' is a yes/no field; compare it with true or false"
                    )
            elif target.type == "choice":
                if not isinstance(v, str) or v not in target.tokens:
                    raise self.fail(fid, f"{where}: '{v}' is not an option token of '{ref}'")
            else:
                raise self.fail(
                    fid,
                    f"{where}: '{op}' works with bool and choice fields; '{ref}' is {target.type} "
                    "(use 'contains' or 'is_set')",
                )
            out.append(v)
        return tuple(out) if op == "in" else out[0]

    def special_value(self, op: str, value: Any, target: Field, where: str, fid: str | None) -> Any:
        """The value of a version-2 field operator, or _NO_VALUE for the original four."""
        ref = target.id

        def need(types: frozenset[str] | tuple[str, ...], what: str) -> None:
            if target.type not in types:
                raise self.fail(fid, f"{where}: '{op}' needs {what}; '{ref}' is {target.type}")

        if op in ("gt", "ge", "lt", "le", "exceeds_age_by"):
            need(("integer",), "an integer field")
            if not _is_int(value):
                raise self.fail(fid, f"{where}: '{op}' needs a whole number")
            return int(value)
        if op in ("after", "before"):
            need(("date", "datetime"), "a date or date-and-time field")
            anchor = parse_anchor(value) if isinstance(value, str) else None
            if anchor is None:
                raise self.fail(
                    fid,
                    f'{where}: \'{op}\' needs an anchor such as "today", "today+7d" or '
                    '"date_of_birth-10m" (days d or months m)',
                )
            name = anchor[0]
            if name != "today":
                other = self.fields.get(name)
                if other is None or other.type not in ("date", "datetime"):
                    raise self.fail(fid, f"{where}: anchor '{name}' is not 'today' or a date field")
            return value
        if op == "shares_person_with":
            need(("people",), "a people field")
            if not isinstance(value, list) or not value:
                raise self.fail(fid, f"{where}: 'shares_person_with' needs a list of people fields")
            for other_id in value:
                other = self.fields.get(other_id) if isinstance(other_id, str) else None
                if other is None or other.type != "people":
                    raise self.fail(fid, f"{where}: '{other_id}' is not a people field")
            return tuple(value)
        if op == "any_row_age_lt":
            need(("people",), "a people field")
            if not any(c.id == "date_of_birth" and c.type == "date" for c in target.columns):
                raise self.fail(fid, f"{where}: '{ref}' has no date_of_birth column")
            if not _is_int(value) or not 0 <= value <= 150:
                raise self.fail(fid, f"{where}: 'any_row_age_lt' needs a whole number of years")
            return int(value)
        if op == "differs_from_setting":
            need(("text",), "a text field")
            if not isinstance(value, str) or not TOKEN_RE.match(value):
                raise self.fail(fid, f"{where}: 'differs_from_setting' needs a setting name")
            return value
        if op == "outside_england":
            need(("text",), "a text field")
            if not isinstance(value, bool):
                raise self.fail(fid, f"{where}: 'outside_england' must be true or false")
            return value
        return _NO_VALUE

    def message_placeholders(self, message: str, where: str) -> None:
        """Date placeholders in a message must name date fields."""
        for match in PLACEHOLDER_RE.finditer(message):
            target = self.fields.get(match.group(1))
            if target is None or target.type not in ("date", "datetime"):
                raise self.fail(
                    None, f"{where}placeholder {match.group(0)} does not name a date field"
                )

    # -- rules, prompts, outcome
    def rules(self, raw: Any) -> tuple[Rule, ...]:
        out: list[Rule] = []
        ids: set[str] = set()
        for i, item in enumerate(self.table_list(raw, "'rules' ", None)):
            where = f"rule {i + 1}: "
            self.check_keys(item, _RULE_KEYS, where, None)
            rid = self.text(item, "id", where, None, required=True)
            where = f"rule '{rid}': "
            if rid in ids:
                raise self.fail(None, f"duplicate rule id '{rid}'")
            ids.add(rid)
            target = self.text(item, "field", where, None, required=True)
            if target not in self.fields:
                raise self.fail(None, f"{where}'field' names unknown field '{target}'")
            if "when" not in item:
                raise self.fail(None, f"{where}missing 'when'")
            out.append(
                Rule(
                    id=rid,
                    field=target,
                    when=self.condition(item["when"], f"{where}when", None),
                    message=self.text(item, "message", where, None, required=True),
                )
            )
        return tuple(out)

    def prompts(self, raw: Any) -> tuple[PromptRule, ...]:
        out: list[PromptRule] = []
        tokens: set[str] = set()
        for i, item in enumerate(self.table_list(raw, "'prompts' ", None)):
            where = f"prompt {i + 1}: "
            self.check_keys(item, _PROMPT_KEYS, where, None)
            token = self.text(item, "token", where, None, required=True)
            where = f"prompt '{token}': "
            if not TOKEN_RE.match(token):
                raise self.fail(None, f"{where}token is not a lower_snake_case token")
            if token in tokens:
                raise self.fail(None, f"duplicate prompt token '{token}'")
            tokens.add(token)
            severity = self.text(item, "severity", where, None, required=True)
            if severity not in SEVERITIES:
                raise self.fail(None, f"{where}severity must be one of {', '.join(SEVERITIES)}")
            if "when" not in item:
                raise self.fail(None, f"{where}missing 'when'")
            message = self.text(item, "message", where, None, required=True)
            critical_message = self.text(item, "critical_message", where, None, required=False)
            critical_when = self.condition_opt(
                item.get("critical_when"), f"{where}critical_when", None
            )
            if (critical_when is None) != (not critical_message):
                raise self.fail(None, f"{where}'critical_when' and 'critical_message' go together")
            self.message_placeholders(message, where)
            self.message_placeholders(critical_message, where)
            out.append(
                PromptRule(
                    token=token,
                    severity=severity,
                    message=message,
                    when=self.condition(item["when"], f"{where}when", None),
                    critical_when=critical_when,
                    critical_message=critical_message,
                )
            )
        return tuple(out)

    def outcome(self, raw: Any) -> OutcomeSpec:
        if raw is None:
            return OutcomeSpec()
        table = self.table(raw, "'outcome' ", None)
        self.check_keys(table, _OUTCOME_KEYS, "outcome: ", None)

        def rows(key: str) -> tuple[OutcomeRule, ...]:
            out: list[OutcomeRule] = []
            for i, item in enumerate(self.table_list(table.get(key), f"outcome.{key} ", None)):
                where = f"outcome.{key} row {i + 1}: "
                self.check_keys(item, _OUTCOME_ROW_KEYS, where, None)
                token = self.text(item, "token", where, None, required=True)
                if not TOKEN_RE.match(token):
                    raise self.fail(None, f"{where}token '{token}' is not a lower_snake_case token")
                if "when" not in item:
                    raise self.fail(None, f"{where}missing 'when'")
                out.append(
                    OutcomeRule(
                        token=token, when=self.condition(item["when"], f"{where}when", None)
                    )
                )
            return tuple(out)

        codes: list[CodeRule] = []
        for i, item in enumerate(
            self.table_list(table.get("snomed_codes"), "outcome.snomed_codes ", None)
        ):
            where = f"outcome.snomed_codes row {i + 1}: "
            self.check_keys(item, _CODE_KEYS, where, None)
            code = item.get("code")
            if not isinstance(code, str) or not SCTID_RE.match(code):
                raise self.fail(
                    None, f"{where}'code' must be a SNOMED CT id written as text (6–18 digits)"
                )
            for_ = self.text(item, "for", where, None, required=True)
            if for_ not in CODE_FOR:
                raise self.fail(None, f"{where}'for' must be one of {', '.join(CODE_FOR)}")
            if "when" not in item:
                raise self.fail(None, f"{where}missing 'when'")
            codes.append(
                CodeRule(
                    code=code,
                    term=self.text(item, "term", where, None, required=True),
                    for_=for_,
                    when=self.condition(item["when"], f"{where}when", None),
                )
            )

        return OutcomeSpec(
            letter_title=rows("letter_title"),
            snomed_codes=tuple(codes),
            pathway=rows("pathway"),
            consent_basis=rows("consent_basis"),
            letter_required_when=self.condition_opt(
                table.get("letter_required_when"), "outcome.letter_required_when", None
            ),
        )


_NO_VALUE: Any = object()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


# --------------------------------------------------------------------------- lookup


@lru_cache(maxsize=64)
def _load_cached(path: str, mtime_ns: int, size: int) -> Form:
    return _Loader(Path(path)).load()


def load_form(path: str | os.PathLike[str]) -> Form:
    """Load and validate one form file. Raises FormError naming the file, field and problem.

    Parsed forms are cached by path, modification time and size.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise FormError(p.name, None, f"cannot be read ({exc.strerror or exc})") from exc
    return _load_cached(str(p.resolve()), st.st_mtime_ns, st.st_size)


def forms_dir() -> Path:
    """Where form files live: $GPSHARE_FORMS_DIR, else the frozen app's bundle, else the repo."""
    env = os.environ.get(ENV_FORMS_DIR)
    if env:
        return Path(env)
    meipass = getattr(sys, "_MEIPASS", None)
    if getattr(sys, "frozen", False) and meipass:
        return Path(meipass) / "forms"
    return Path(__file__).resolve().parent.parent / "forms"


def _form_files(directory: Path) -> Iterator[Path]:
    try:
        yield from sorted(p for p in directory.glob("*.toml") if p.is_file())
    except OSError:
        return


def scan_forms(directory: Path | None = None) -> tuple[list[Form], list[FormError]]:
    """Load every *.toml in the forms folder: (valid forms, problems with the others)."""
    folder = directory if directory is not None else forms_dir()
    forms: list[Form] = []
    problems: list[FormError] = []
    for path in _form_files(folder):
        try:
            forms.append(load_form(path))
        except FormError as exc:
            problems.append(exc)
    forms.sort(key=lambda f: (f.id, f.version))
    return forms, problems


def available_forms() -> list[Form]:
    """Every valid form in forms_dir(), sorted by id then version (broken files are skipped;
    use scan_forms to report them)."""
    return scan_forms()[0]


def load_form_by_id(form_id: str, version: int | None = None) -> Form:
    """The form with this id and version (None: the latest version). Raises FormError."""
    folder = forms_dir()
    forms, problems = scan_forms(folder)
    matches = [f for f in forms if f.id == form_id and (version is None or f.version == version)]
    if version is not None and len(matches) > 1:
        files = ", ".join(sorted(f.path.name for f in matches))
        raise FormError(
            matches[0].path.name,
            None,
            f"form '{form_id}' version {version} is defined twice ({files})",
        )
    if not matches:
        wanted = f"form '{form_id}'" + (f" version {version}" if version is not None else "")
        problem = f"no {wanted} in {folder}"
        if problems:
            problem += "; these form files could not be read: " + "; ".join(
                str(p) for p in problems
            )
        raise FormError(f"{form_id}.toml", None, problem)
    return max(matches, key=lambda f: f.version)
