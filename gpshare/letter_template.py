"""Letter templates as data: load and validate `forms/<form id>.v<version>.letter.toml`.

A letter template sits beside the form version it belongs to and says which sections the
letter has, their headings and fixed wording, and which answers they print, with conditions
in the forms' condition language (docs/forms.md, "Letter templates"). No Qt, no SQL, no
reportlab: `gpshare.letter` renders a loaded template. Errors name the file, the section and
the problem, as the form loader's do.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpshare.forms import (
    AGE_OPERATORS,
    CHOICE_TYPES,
    CONTEXT_OPERATORS,
    LIST_CHOICE_TYPES,
    OPERATORS,
    PEOPLE_TYPES,
    TOKEN_RE,
    Condition,
    Field,
    Form,
    FormError,
    _Loader,
)
from gpshare.navigator import is_empty

__all__ = [
    "BLOCK_TYPES",
    "BUILTINS",
    "CONTEXT_NAMES",
    "FORMATS",
    "STYLES",
    "Block",
    "Item",
    "LetterTemplate",
    "LetterTemplateError",
    "Placeholder",
    "Section",
    "TableColumn",
    "Text",
    "holds",
    "load_letter_template",
    "template_for_form",
    "template_path",
]

BLOCK_TYPES: tuple[str, ...] = (
    "paragraph",
    "fields",
    "bullets",
    "list",
    "longtext",
    "table",
    "answer_groups",
    "space",
    "builtin",
)
BUILTINS: tuple[str, ...] = ("letterhead", "previous_concerns", "signature")
STYLES: tuple[str, ...] = (
    "body",
    "small",
    "title",
    "subtitle",
    "notice",
    "quote",
    "opinion",
    "callout",
    "label",
    "h3",
)
FORMATS: tuple[str, ...] = (
    "text",
    "label",
    "phrase",
    "date",
    "datetime",
    "stamp",
    "nhs",
    "yesno",
    "years",
    "month_after",
)
# Values the renderer supplies that are not answers (the non-form parts of the letter).
CONTEXT_NAMES: frozenset[str] = frozenset(
    {
        "referrer.full_name",
        "referrer.role_title",
        "referrer.gmc_number",
        "referrer.contact",
        "practice.name",
        "practice.phone",
        "practice.secure_email",
        "practice.ods_code",
        "record_id",
        "signed",
        "completed",
        "child_age",
    }
)

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_NAME = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)?$")


class LetterTemplateError(Exception):
    """A letter template is missing, unreadable or malformed."""

    def __init__(self, file: str, where: str | None, problem: str) -> None:
        self.file = file
        self.where = where
        self.problem = problem
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.where:
            return f"{self.file}: {self.where}: {self.problem}"
        return f"{self.file}: {self.problem}"


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Placeholder:
    """`{name:format args|default}` in a template text (`a+b`: both values, joined by sep)."""

    name: str
    format: str = "text"
    table: str = ""  # phrase table, for `phrase`
    only: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    sep: str = ", "
    default: str = ""


# A compiled text: literal strings, placeholders, and optional groups (tuples of the two).
Part = str | Placeholder | tuple[str | Placeholder, ...]


@dataclass(frozen=True)
class Text:
    """A template text: fixed wording with placeholders; `[...]` groups drop out when a
    placeholder inside them is empty."""

    source: str
    parts: tuple[Part, ...]

    def placeholders(self) -> list[Placeholder]:
        found: list[Placeholder] = []
        for part in self.parts:
            if isinstance(part, Placeholder):
                found.append(part)
            elif isinstance(part, tuple):
                found.extend(p for p in part if isinstance(p, Placeholder))
        return found


@dataclass(frozen=True)
class Item:
    """A text with an optional condition: a field row, bullet, list item or group."""

    text: Text
    when: Condition | None = None
    label: str = ""  # field rows and answer groups
    value: str = ""  # answer groups: the answer token that puts a field in this group


@dataclass(frozen=True)
class TableColumn:
    heading: str
    value: Text
    width: float


@dataclass(frozen=True)
class Block:
    """One piece of a section; which keys are used depends on `type` (see docs/forms.md)."""

    type: str
    when: Condition | None = None
    text: Text | None = None
    lead: str = ""
    bold: bool = False
    style: str = "body"
    items: tuple[Item, ...] = ()
    field: str = ""
    fields: tuple[str, ...] = ()
    names: str = ""
    columns: tuple[TableColumn, ...] = ()
    empty: str = ""
    join: str = "; "
    height: float = 0.0
    name: str = ""
    texts: Mapping[str, Text] | None = None


@dataclass(frozen=True)
class Section:
    id: str
    heading: str
    blocks: tuple[Block, ...]
    when: Condition | None = None
    keep_together: bool = False


@dataclass(frozen=True)
class LetterTemplate:
    """A loaded, validated letter template for one form version."""

    form_id: str
    form_version: int
    document_title: Text
    sections: tuple[Section, ...]
    phrases: Mapping[str, Mapping[str, str]]
    path: Path

    @property
    def headings(self) -> tuple[str, ...]:
        """The section headings in order (sections printed under a heading)."""
        return tuple(s.heading for s in self.sections if s.heading)


# --------------------------------------------------------------------------- conditions


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def holds(cond: Condition, answers: Mapping[str, Any], outcome: Mapping[str, Any]) -> bool:
    """Evaluate a template condition on stored answers and the stored outcome.

    `field` names starting with "outcome." read the outcome; empty answers have no value.
    """
    if cond.op in ("all", "any", "not"):
        results = (holds(c, answers, outcome) for c in cond.children)
        if cond.op == "all":
            return all(results)
        if cond.op == "any":
            return any(results)
        return not next(results)
    name = cond.field or ""
    source = outcome if name.startswith("outcome.") else answers
    value = source.get(name.removeprefix("outcome."))
    if is_empty(value):
        value = None
    if cond.op == "is_set":
        return (value is not None) is bool(cond.value)
    if value is None:
        return False
    if cond.op == "equals":
        return _same(value, cond.value)
    if cond.op == "in":
        options = cond.value if isinstance(cond.value, tuple) else ()
        return any(_same(value, o) for o in options)
    if cond.op == "contains":
        return isinstance(value, list) and cond.value in value
    return False


# --------------------------------------------------------------------------- loader

_TOP_KEYS = frozenset({"form_id", "form_version", "document_title", "phrases", "sections"})
_SECTION_KEYS = frozenset({"id", "heading", "when", "keep_together", "blocks"})
_BLOCK_KEYS: dict[str, frozenset[str]] = {
    "paragraph": frozenset({"text", "lead", "style", "bold"}),
    "fields": frozenset({"rows"}),
    "bullets": frozenset({"items", "field", "empty"}),
    "list": frozenset({"text", "items", "join", "style"}),
    "longtext": frozenset({"field", "style", "empty"}),
    "table": frozenset({"field", "columns", "empty"}),
    "answer_groups": frozenset({"fields", "names", "groups"}),
    "space": frozenset({"height"}),
    "builtin": frozenset({"name", "none", "one", "many", "phrases"}),
}
_ITEM_KEYS = frozenset({"text", "when", "label", "value"})
_COLUMN_KEYS = frozenset({"heading", "value", "width"})
_OUTCOME_OPS = frozenset({"equals", "in", "is_set"})
# What a template's conditions may test: answers as stored, so nothing that needs the
# navigator's context (age, settings, named form conditions).
_TEMPLATE_OPS: tuple[str, ...] = ("equals", "in", "contains", "is_set", "all", "any", "not")


class _TemplateLoader:
    def __init__(self, path: Path, form: Form) -> None:
        self.path = path
        self.file = path.name
        self.form = form
        self.phrases: dict[str, dict[str, str]] = {}
        self.cond_loader = _Loader(form.path)
        self.cond_loader.fields = {f.id: f for f in form.all_fields()}

    def fail(self, where: str | None, problem: str) -> LetterTemplateError:
        return LetterTemplateError(self.file, where, problem)

    def keys(self, table: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(
                    where, f"unknown key '{key}' (allowed: {', '.join(sorted(allowed))})"
                )

    def string(self, table: Mapping[str, Any], key: str, where: str, *, required: bool) -> str:
        value = table.get(key)
        if value is None:
            if required:
                raise self.fail(where, f"missing '{key}'")
            return ""
        if not isinstance(value, str):
            raise self.fail(where, f"'{key}' must be text")
        if required and not value.strip():
            raise self.fail(where, f"'{key}' must not be empty")
        return value

    def tables(self, value: Any, where: str, what: str) -> list[Mapping[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(where, f"'{what}' must be a list of tables")
        return list(value)

    def field(self, fid: Any, where: str, types: frozenset[str] | None = None) -> Field:
        if not isinstance(fid, str) or not self.form.has_field(fid):
            raise self.fail(
                where,
                f"refers to field '{fid}', which form {self.form.id} v{self.form.version} "
                "does not have",
            )
        fld = self.form.field(fid)
        if types is not None and fld.type not in types:
            raise self.fail(
                where, f"field '{fid}' is {fld.type}; this needs one of: {', '.join(sorted(types))}"
            )
        return fld

    # -- entry point
    def load(self) -> LetterTemplate:
        try:
            data = tomllib.loads(self.path.read_bytes().decode("utf-8"))
        except OSError as exc:
            raise self.fail(None, f"cannot be read ({exc.strerror or exc})") from exc
        except UnicodeDecodeError as exc:
            raise self.fail(None, f"is not UTF-8 text (byte {exc.start})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise self.fail(None, f"is not valid TOML: {exc}") from exc
        self.keys(data, _TOP_KEYS, "top level")
        form_id = data.get("form_id")
        version = data.get("form_version")
        if form_id != self.form.id or version != self.form.version:
            raise self.fail(
                None,
                f"is for form {form_id!r} version {version!r}, but it was loaded for form "
                f"'{self.form.id}' version {self.form.version}",
            )
        raw_phrases = data.get("phrases", {})
        if not isinstance(raw_phrases, dict):
            raise self.fail("phrases", "must be a table of tables")
        for name, table in raw_phrases.items():
            if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
                raise self.fail(f"phrases.{name}", 'must be a table of token = "text"')
            self.phrases[name] = dict(table)
        title = self.text(
            self.string(data, "document_title", "top level", required=True), "document_title"
        )
        raw_sections = self.tables(data.get("sections"), "top level", "sections")
        if not raw_sections:
            raise self.fail(None, "has no sections: add at least one [[sections]] table")
        ids: set[str] = set()
        sections: list[Section] = []
        for i, raw in enumerate(raw_sections):
            sid = raw.get("id")
            where = f"section '{sid}'" if isinstance(sid, str) else f"section {i + 1}"
            self.keys(raw, _SECTION_KEYS, where)
            sid = self.string(raw, "id", where, required=True)
            if not TOKEN_RE.match(sid):
                raise self.fail(where, "section id is not a lower_snake_case token")
            if sid in ids:
                raise self.fail(where, "duplicate section id")
            ids.add(sid)
            keep = raw.get("keep_together", False)
            if not isinstance(keep, bool):
                raise self.fail(where, "'keep_together' must be true or false")
            blocks = tuple(
                self.block(b, f"{where}, block {j + 1}")
                for j, b in enumerate(self.tables(raw.get("blocks"), where, "blocks"))
            )
            if not blocks:
                raise self.fail(where, "has no blocks")
            sections.append(
                Section(
                    id=sid,
                    heading=self.string(raw, "heading", where, required=False),
                    blocks=blocks,
                    when=self.condition(raw.get("when"), where),
                    keep_together=keep,
                )
            )
        return LetterTemplate(
            form_id=self.form.id,
            form_version=self.form.version,
            document_title=title,
            sections=tuple(sections),
            phrases=self.phrases,
            path=self.path,
        )

    # -- blocks
    def block(self, raw: Mapping[str, Any], where: str) -> Block:
        btype = raw.get("type")
        if btype not in BLOCK_TYPES:
            raise self.fail(
                where, f"unknown block type {btype!r} (use one of: {', '.join(BLOCK_TYPES)})"
            )
        self.keys(raw, _BLOCK_KEYS[btype] | {"type", "when"}, f"{where} ({btype})")
        where = f"{where} ({btype})"
        when = self.condition(raw.get("when"), where)
        style = self.string(raw, "style", where, required=False) or "body"
        if style not in STYLES:
            raise self.fail(where, f"unknown style '{style}' (use one of: {', '.join(STYLES)})")
        if btype == "paragraph":
            bold = raw.get("bold", False)
            if not isinstance(bold, bool):
                raise self.fail(where, "'bold' must be true or false")
            text = self.text(self.string(raw, "text", where, required=False), where)
            lead = self.string(raw, "lead", where, required=False)
            if not text.parts and not lead:
                raise self.fail(where, "needs 'text' or 'lead'")
            return Block(btype, when, text=text, lead=lead, bold=bold, style=style)
        if btype == "fields":
            rows = self.items(raw.get("rows"), where, "rows", label=True)
            if not rows:
                raise self.fail(where, "needs 'rows'")
            return Block(btype, when, items=rows)
        if btype == "bullets":
            fid = raw.get("field")
            if fid is not None:
                self.field(fid, where, LIST_CHOICE_TYPES)
            items = self.items(raw.get("items"), where, "items")
            if not items and fid is None:
                raise self.fail(where, "needs 'items' or 'field'")
            return Block(
                btype,
                when,
                items=items,
                field=fid or "",
                empty=self.string(raw, "empty", where, required=False),
            )
        if btype == "list":
            text = self.text(self.string(raw, "text", where, required=True), where, items=True)
            if not any(p.name == "items" for p in text.placeholders()):
                raise self.fail(where, "'text' must contain {items}")
            items = self.items(raw.get("items"), where, "items")
            if not items:
                raise self.fail(where, "needs 'items'")
            return Block(
                btype,
                when,
                text=text,
                items=items,
                join=self.string(raw, "join", where, required=False) or "; ",
                style=style,
            )
        if btype == "longtext":
            fid = self.field(raw.get("field"), where, frozenset({"text", "longtext"})).id
            return Block(
                btype,
                when,
                field=fid,
                style=style,
                empty=self.string(raw, "empty", where, required=False),
            )
        if btype == "table":
            fld = self.field(raw.get("field"), where, PEOPLE_TYPES)
            columns: list[TableColumn] = []
            for k, col in enumerate(self.tables(raw.get("columns"), where, "columns")):
                cwhere = f"{where}, column {k + 1}"
                self.keys(col, _COLUMN_KEYS, cwhere)
                width = col.get("width", 1)
                if not isinstance(width, int | float) or isinstance(width, bool) or width <= 0:
                    raise self.fail(cwhere, "'width' must be a positive number")
                columns.append(
                    TableColumn(
                        heading=self.string(col, "heading", cwhere, required=True),
                        value=self.text(
                            self.string(col, "value", cwhere, required=True), cwhere, row=fld
                        ),
                        width=float(width),
                    )
                )
            if not columns:
                raise self.fail(where, "needs 'columns'")
            return Block(
                btype,
                when,
                field=fld.id,
                columns=tuple(columns),
                empty=self.string(raw, "empty", where, required=False),
            )
        if btype == "answer_groups":
            fids = raw.get("fields")
            if not isinstance(fids, list) or not fids:
                raise self.fail(where, "'fields' must be a non-empty list of field ids")
            for fid in fids:
                self.field(fid, where, frozenset({"choice"}))
            names = self.string(raw, "names", where, required=False)
            if names and names not in self.phrases:
                raise self.fail(where, f"'names' refers to unknown phrase table '{names}'")
            groups = self.items(raw.get("groups"), where, "groups", label=True, value=True)
            if not groups:
                raise self.fail(where, "needs 'groups'")
            return Block(btype, when, fields=tuple(fids), names=names, items=groups)
        if btype == "space":
            height = raw.get("height")
            if not isinstance(height, int | float) or isinstance(height, bool) or height < 0:
                raise self.fail(where, "'height' must be a number of points")
            return Block(btype, when, height=float(height))
        name = self.string(raw, "name", where, required=True)
        if name not in BUILTINS:
            raise self.fail(where, f"unknown builtin '{name}' (use one of: {', '.join(BUILTINS)})")
        texts: dict[str, Text] = {}
        if name == "previous_concerns":
            for key in ("none", "one", "many"):
                texts[key] = self.text(
                    self.string(raw, key, where, required=True), where, count=True
                )
            table = self.string(raw, "phrases", where, required=True)
            if table not in self.phrases:
                raise self.fail(where, f"'phrases' refers to unknown phrase table '{table}'")
            return Block(btype, when, name=name, texts=texts, names=table)
        extra = [k for k in ("none", "one", "many", "phrases") if k in raw]
        if extra:
            raise self.fail(where, f"builtin '{name}' takes no '{extra[0]}'")
        return Block(btype, when, name=name)

    def items(
        self, raw: Any, where: str, what: str, *, label: bool = False, value: bool = False
    ) -> tuple[Item, ...]:
        out: list[Item] = []
        for k, item in enumerate(self.tables(raw, where, what)):
            iwhere = f"{where}, {what} {k + 1}"
            self.keys(item, _ITEM_KEYS, iwhere)
            if "label" in item and not label:
                raise self.fail(iwhere, "'label' is only for field rows and answer groups")
            if "value" in item and not value:
                raise self.fail(iwhere, "'value' is only for answer groups")
            out.append(
                Item(
                    text=self.text(self.string(item, "text", iwhere, required=not value), iwhere),
                    when=self.condition(item.get("when"), iwhere),
                    label=self.string(item, "label", iwhere, required=label),
                    value=self.string(item, "value", iwhere, required=value),
                )
            )
        return tuple(out)

    # -- texts and placeholders
    def text(
        self,
        source: str,
        where: str,
        *,
        row: Field | None = None,
        items: bool = False,
        count: bool = False,
    ) -> Text:
        parts: list[Part] = []
        pos = 0
        for match in re.finditer(r"\[([^\[\]]*)\]", source):
            parts.extend(self.segment(source[pos : match.start()], where, row, items, count))
            group = tuple(self.segment(match.group(1), where, row, items, count))
            if not any(isinstance(p, Placeholder) for p in group):
                raise self.fail(where, f"optional group [{match.group(1)}] has no placeholder")
            parts.append(group)
            pos = match.end()
        parts.extend(self.segment(source[pos:], where, row, items, count))
        return Text(source, tuple(parts))

    def segment(
        self, source: str, where: str, row: Field | None, items: bool, count: bool
    ) -> list[str | Placeholder]:
        out: list[str | Placeholder] = []
        pos = 0
        for match in _PLACEHOLDER.finditer(source):
            out.append(source[pos : match.start()])
            out.append(self.placeholder(match.group(1), where, row, items, count))
            pos = match.end()
        out.append(source[pos:])
        for literal in out:
            if isinstance(literal, str) and any(c in literal for c in "{}[]"):
                raise self.fail(
                    where,
                    f"stray bracket in {source!r}: {{name}} is a placeholder and [...] an "
                    "optional group; other brackets cannot be printed",
                )
        return [p for p in out if p != ""]

    def placeholder(
        self, spec: str, where: str, row: Field | None, items: bool, count: bool
    ) -> Placeholder:
        body, _, default = spec.partition("|")
        name, _, fmt_spec = body.partition(":")
        name = name.strip()
        words = fmt_spec.split()
        fmt = words[0] if words else "text"
        if fmt not in FORMATS:
            raise self.fail(
                where, f"{{{spec}}}: unknown format '{fmt}' (use one of: {', '.join(FORMATS)})"
            )
        names = name.split("+")
        if len(names) > 1:
            for single in names:
                self.placeholder(
                    single + (f":{fmt_spec}" if fmt_spec else ""), where, row, False, False
                )
            sep = ", "
            for word in words[1:]:
                if word.startswith("sep="):
                    sep = word.removeprefix("sep=") + " "
            return Placeholder(name, fmt, sep=sep, default=default)
        if not _NAME.match(name):
            raise self.fail(where, f"{{{spec}}}: '{name}' is not a name")
        target: Field | None = None
        if (items and name == "items") or (count and name == "count"):
            pass
        elif row is not None:
            try:
                row.column(name)
            except KeyError:
                raise self.fail(
                    where, f"{{{spec}}}: '{row.id}' rows have no column '{name}'"
                ) from None
        elif name.startswith("outcome."):
            if not TOKEN_RE.match(name.removeprefix("outcome.")):
                raise self.fail(where, f"{{{spec}}}: outcome key is not a lower_snake_case token")
        elif name not in CONTEXT_NAMES:
            target = self.field(name, f"{where}, {{{spec}}}")
        table = ""
        only: tuple[str, ...] = ()
        exclude: tuple[str, ...] = ()
        sep = ", "
        for word in words[1:]:
            key, eq, value = word.partition("=")
            if fmt == "phrase" and not eq and not table:
                table = word
            elif key in ("only", "except") and eq:
                tokens = tuple(t for t in value.split(",") if t)
                if target is not None and target.type in CHOICE_TYPES:
                    for token in tokens:
                        if token not in target.tokens:
                            raise self.fail(
                                where, f"{{{spec}}}: '{token}' is not an option of '{name}'"
                            )
                if key == "only":
                    only = tokens
                else:
                    exclude = tokens
            elif key == "sep" and eq:
                sep = value + " "
            else:
                raise self.fail(where, f"{{{spec}}}: unknown option '{word}'")
        if fmt == "phrase":
            if not table:
                raise self.fail(where, f"{{{spec}}}: 'phrase' needs a phrase table name")
            if table not in self.phrases:
                raise self.fail(where, f"{{{spec}}}: unknown phrase table '{table}'")
        if fmt == "label" and target is not None and target.type not in CHOICE_TYPES:
            raise self.fail(
                where, f"{{{spec}}}: 'label' needs a choice field; '{name}' is {target.type}"
            )
        return Placeholder(name, fmt, table, only, exclude, sep, default)

    # -- conditions
    def condition(self, raw: Any, where: str) -> Condition | None:
        if raw is None:
            return None
        return self._condition(raw, where)

    def _condition(self, raw: Any, where: str) -> Condition:
        if not isinstance(raw, dict):
            raise self.fail(
                where, 'a condition must be a table such as {field = "x", is_set = true}'
            )
        if "outcome" in raw:
            key = raw["outcome"]
            ops = [k for k in raw if k != "outcome"]
            if len(ops) != 1 or ops[0] not in _OUTCOME_OPS:
                raise self.fail(where, "an outcome condition needs one of: equals, in, is_set")
            if not isinstance(key, str) or not TOKEN_RE.match(key):
                raise self.fail(where, "'outcome' must name an outcome key such as letter_title")
            op = ops[0]
            value = raw[op]
            if op == "is_set":
                if not isinstance(value, bool):
                    raise self.fail(where, "'is_set' must be true or false")
                return Condition(op, field=f"outcome.{key}", value=value)
            values = value if op == "in" else [value]
            if (
                not isinstance(values, list)
                or not values
                or not all(isinstance(v, str) for v in values)
            ):
                raise self.fail(where, f"outcome '{key}': compare with text tokens")
            return Condition(
                op, field=f"outcome.{key}", value=tuple(values) if op == "in" else values[0]
            )
        for op in raw:
            if op in (*AGE_OPERATORS, *CONTEXT_OPERATORS) or (
                op not in _TEMPLATE_OPS and op != "field" and op in OPERATORS + ("ref",)
            ):
                raise self.fail(
                    where,
                    f"'{op}' is not available in a letter template (use {', '.join(_TEMPLATE_OPS)}"
                    " on answers, or an outcome condition)",
                )
        if any(op in raw for op in ("all", "any", "not")) and len(raw) == 1:
            op, value = next(iter(raw.items()))
            if op == "not":
                return Condition("not", children=(self._condition(value, where),))
            if not isinstance(value, list) or not value:
                raise self.fail(where, f"'{op}' needs a non-empty list of conditions")
            return Condition(op, children=tuple(self._condition(v, where) for v in value))
        try:
            return self.cond_loader.condition(raw, "condition", None)
        except FormError as exc:
            raise self.fail(where, exc.problem.removeprefix("condition: ")) from None


# --------------------------------------------------------------------------- lookup

_CACHE: dict[tuple[str, int, int, str, int], LetterTemplate] = {}


def template_path(form: Form) -> Path:
    """Where the letter template of a form version lives: beside the form file."""
    return form.path.with_name(f"{form.id}.v{form.version}.letter.toml")


def load_letter_template(path: Path, form: Form) -> LetterTemplate:
    """Load and validate a letter template against its form. Raises LetterTemplateError.

    Parsed templates are cached by path, modification time, size and form version.
    """
    try:
        st = path.stat()
    except OSError as exc:
        raise LetterTemplateError(
            path.name,
            None,
            f"cannot be read ({exc.strerror or exc}); every form version "
            "that produces letters needs a letter template beside it",
        ) from exc
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, form.id, form.version)
    if key not in _CACHE:
        _CACHE[key] = _TemplateLoader(path, form).load()
    return _CACHE[key]


def template_for_form(form: Form) -> LetterTemplate:
    """The letter template that belongs to this form version."""
    return load_letter_template(template_path(form), form)


def phrase(template: LetterTemplate, table: str, token: str) -> str | None:
    """A phrase from one of the template's tables, or None."""
    return template.phrases.get(table, {}).get(token)
