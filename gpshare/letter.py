"""The safeguarding referral letter (PDF, reportlab platypus), rendered from a letter template.

What the letter says comes from data: the letter template that sits beside each form version
(`forms/<form id>.v<version>.letter.toml`, loaded and validated by `gpshare.letter_template`;
schema in docs/forms.md) lists the sections, their headings, the fixed wording, which answers
they print and when.  This module is the generic renderer: it walks the sections, evaluates
their conditions on the stored answers and outcome, fills placeholders (option labels from the
form, UK dates, NHS numbers) and lays the blocks out.

What is not the form's stays here: the practice letterhead, the "OFFICIAL – SENSITIVE" marking
and footer ("Record reference", "Page X of Y") on every page, the earlier-concerns table from
gpshare's own chronology, and the signature block, drawn in the page content because Qt's PDF
viewer does not draw signature widgets.  The PDF is unsigned here; ``signing.sign_pdf`` signs
it afterwards.

All user text is escaped before it reaches a platypus ``Paragraph`` (which would otherwise read
``<b>`` or ``&`` as markup), and so is the template's fixed wording.  Right-to-left runs
(Arabic, Hebrew) are put in visual order, and Arabic letters are given their joined
presentation forms, because reportlab lays text out left to right without shaping; text
extraction then yields presentation forms (NFKC-equivalent to the typed letters).  Only the
shipped DejaVu fonts are used, all embedded, and the PDF is built with ``invariant=1`` so the
same input gives the same bytes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, unescape

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    CondPageBreak,
    Flowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)
from reportlab.platypus.flowables import HRFlowable

from gpshare.forms import Condition, Form, load_form_by_id
from gpshare.letter_template import (
    Block,
    LetterTemplate,
    Placeholder,
    Text,
    holds,
    template_for_form,
)
from gpshare.navigator import add_months, is_empty

__all__ = [
    "LetterInput",
    "PracticeDetails",
    "PriorConcern",
    "Referrer",
    "build_letter",
    "default_template",
    "document_title",
    "letter_template_for",
    "letter_filename",
    "missing_practice_details",
    "short_reference",
]

FONTS_DIR = Path(__file__).resolve().parent / "fonts"
FONT = "DejaVuSans"
FONT_BOLD = "DejaVuSans-Bold"
FONT_ITALIC = "DejaVuSans-Oblique"

MARKING = "OFFICIAL – SENSITIVE"  # followed on each page by ": " and the letter's title
SIGNATURE_NOTE = "Digitally signed — verify in your PDF reader's signature panel"

DEFAULT_FORM_ID = "england-child-safeguarding"

INK = colors.HexColor("#1b1f24")
MUTED = colors.HexColor("#5b6470")
HEADING = colors.HexColor("#1d3557")
RULE = colors.HexColor("#b9bfc7")
SHADE = colors.HexColor("#f1f3f5")
MARK_RED = colors.HexColor("#8a1c1c")

PAGE_W, PAGE_H = A4
MARGIN_X = 20 * mm
FRAME_PAD = 6  # platypus frames pad their content by 6 pt on each side
CONTENT_W = PAGE_W - 2 * MARGIN_X
LABEL_W = 44 * mm


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class PracticeDetails:
    """The practice letterhead, from settings."""

    name: str
    address: str
    ods_code: str
    phone: str
    secure_email: str


@dataclass(frozen=True)
class Referrer:
    """The clinician who signs the letter."""

    full_name: str
    role_title: str
    gmc_number: str | None
    contact: str


_Date = date  # the field below is called "date"


@dataclass(frozen=True)
class PriorConcern:
    """One earlier record about the same child (chronology)."""

    date: _Date
    pathway: str
    decision: str
    review_date: _Date | None
    author: str


@dataclass(frozen=True)
class LetterInput:
    """Everything the letter is built from."""

    record_id: str
    practice: PracticeDetails
    referrer: Referrer
    answers: Mapping[str, Any]
    outcome: Mapping[str, Any]
    completed_at: datetime
    signed_at: datetime
    prior_concerns: Sequence[PriorConcern]
    option_label: Callable[[str, str], str]
    child_age: int | None
    # The record's form version's letter template; None means version 1 (default_template).
    template: LetterTemplate | None = None


def missing_practice_details(p: PracticeDetails) -> list[str]:
    """Names of the letterhead fields that are empty (the letter needs all of them)."""
    fields = [
        ("practice name", p.name),
        ("address", p.address),
        ("ODS code", p.ods_code),
        ("phone", p.phone),
        ("secure email", p.secure_email),
    ]
    return [label for label, value in fields if not (value or "").strip()]


def short_reference(record_id: str) -> str:
    """A short, non-identifying form of the record id (first 8 letters/digits, upper case)."""
    compact = re.sub(r"[^0-9A-Za-z]", "", record_id)
    return (compact[:8] or "record").upper()


def letter_filename(record_id: str, when: datetime) -> str:
    """File name for the letter: no patient identifiers, only the reference and date."""
    return f"safeguarding-referral-{short_reference(record_id)}-{_local(when):%Y%m%d}.pdf"


# --------------------------------------------------------------------------- text helpers

_RTL_RUN = re.compile(
    r"[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff]"
    r"(?:[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff\s\u060c\u061b\u061f]*"
    r"[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff])?"
)
_LAM_ALEF = {
    "\u0622": "ARABIC LIGATURE LAM WITH ALEF WITH MADDA ABOVE",
    "\u0623": "ARABIC LIGATURE LAM WITH ALEF WITH HAMZA ABOVE",
    "\u0625": "ARABIC LIGATURE LAM WITH ALEF WITH HAMZA BELOW",
    "\u0627": "ARABIC LIGATURE LAM WITH ALEF",
}


@cache
def _arabic_forms(ch: str) -> dict[str, str]:
    """Presentation forms of an Arabic letter: ISOLATED/FINAL/INITIAL/MEDIAL where they exist."""
    if ch == "\u0640":  # tatweel joins on both sides and has no forms of its own
        return {"ISOLATED": ch, "FINAL": ch, "INITIAL": ch, "MEDIAL": ch}
    try:
        name = unicodedata.name(ch)
    except ValueError:
        return {}
    if not name.startswith("ARABIC LETTER"):
        return {}
    forms: dict[str, str] = {}
    for form in ("ISOLATED", "FINAL", "INITIAL", "MEDIAL"):
        try:
            forms[form] = unicodedata.lookup(f"{name} {form} FORM")
        except KeyError:
            continue
    return forms


def _shape_arabic(text: str) -> str:
    """Replace Arabic letters by their contextual presentation forms (logical order kept)."""
    letters = list(text)
    out: list[str] = []

    def neighbour(i: int, step: int) -> dict[str, str]:
        j = i + step
        while 0 <= j < len(letters) and unicodedata.category(letters[j]) == "Mn":
            j += step  # vowel marks are transparent for joining
        return _arabic_forms(letters[j]) if 0 <= j < len(letters) else {}

    i = 0
    while i < len(letters):
        ch = letters[i]
        forms = _arabic_forms(ch)
        if not forms:
            out.append(ch)
            i += 1
            continue
        prev = neighbour(i, -1)
        joins_prev = "INITIAL" in prev or "MEDIAL" in prev  # previous letter joins forwards
        nxt = letters[i + 1] if i + 1 < len(letters) else ""
        if ch == "\u0644" and nxt in _LAM_ALEF:
            form = "FINAL" if joins_prev else "ISOLATED"
            try:
                out.append(unicodedata.lookup(f"{_LAM_ALEF[nxt]} {form} FORM"))
                i += 2
                continue
            except KeyError:
                pass
        joins_next = "INITIAL" in forms and bool(neighbour(i, 1))
        if joins_prev and joins_next and "MEDIAL" in forms:
            out.append(forms["MEDIAL"])
        elif joins_prev and "FINAL" in forms:
            out.append(forms["FINAL"])
        elif joins_next:
            out.append(forms["INITIAL"])
        else:
            out.append(forms.get("ISOLATED", ch))
        i += 1
    return "".join(out)


def _visual_rtl(text: str) -> str:
    """Put right-to-left runs into visual (left-to-right drawing) order, shaping Arabic."""

    def flip(match: re.Match[str]) -> str:
        shaped = _shape_arabic(match.group(0))
        clusters: list[str] = []
        for ch in shaped:  # keep combining marks after their base letter
            if clusters and unicodedata.combining(ch):
                clusters[-1] += ch
            else:
                clusters.append(ch)
        return "".join(reversed(clusters))

    return _RTL_RUN.sub(flip, text)


def _t(value: object) -> str:
    """User text made safe for a Paragraph: escaped, RTL in visual order, newlines kept."""
    text = "" if value is None else str(value)
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    text = escape(_visual_rtl(text))
    return text.replace("\n", "<br/>")


def _blocks(value: object) -> list[str]:
    """Split long free text into paragraphs at blank lines (each already escaped)."""
    text = "" if value is None else str(value).replace("\r\n", "\n").replace("\r", "\n")
    return [_t(block) for block in re.split(r"\n\s*\n", text) if block.strip()]


def _local(when: datetime) -> datetime:
    """A datetime in UK local time (naive values are taken as already local)."""
    if when.tzinfo is None:
        return when
    try:
        from zoneinfo import ZoneInfo

        return when.astimezone(ZoneInfo("Europe/London"))
    except Exception:  # tzdata missing
        return when


def _parse_date(value: object) -> date | None:
    if isinstance(value, datetime):
        return _local(value).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value.strip():
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    return None


def _fmt_date(value: object) -> str:
    """ "14 March 2024"; unparseable text is returned as typed."""
    parsed = _parse_date(value)
    if parsed is None:
        return "" if value is None else str(value)
    return f"{parsed.day} {parsed:%B %Y}"


def _fmt_datetime(value: object) -> str:
    """ "14:05 on 25 November 2026" (UK local time)."""
    when: datetime | None = None
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str) and value.strip():
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            return value
    if when is None:
        return "" if value is None else str(value)
    when = _local(when)
    return f"{when:%H:%M} on {when.day} {when:%B %Y}"


def _fmt_nhs(value: object) -> str:
    digits = re.sub(r"\D", "", str(value or ""))
    if len(digits) == 10:
        return f"{digits[:3]} {digits[3:6]} {digits[6:]}"
    return str(value or "")


# --------------------------------------------------------------------------- fonts and styles


@cache
def register_fonts() -> None:
    """Register the shipped DejaVu fonts with reportlab (idempotent)."""
    _register_fonts()


def _register_fonts() -> None:
    """Register the shipped DejaVu fonts once per process."""
    for name, file in (
        (FONT, "DejaVuSans.ttf"),
        (FONT_BOLD, "DejaVuSans-Bold.ttf"),
        (FONT_ITALIC, "DejaVuSans-Oblique.ttf"),
    ):
        pdfmetrics.registerFont(TTFont(name, str(FONTS_DIR / file)))
    pdfmetrics.registerFontFamily(
        FONT, normal=FONT, bold=FONT_BOLD, italic=FONT_ITALIC, boldItalic=FONT_BOLD
    )


@dataclass(frozen=True)
class _Styles:
    body: ParagraphStyle
    small: ParagraphStyle
    label: ParagraphStyle
    value: ParagraphStyle
    cell: ParagraphStyle
    cell_head: ParagraphStyle
    title: ParagraphStyle
    subtitle: ParagraphStyle
    h2: ParagraphStyle
    h3: ParagraphStyle
    opinion: ParagraphStyle
    opinion_label: ParagraphStyle
    callout: ParagraphStyle
    quote: ParagraphStyle
    letterhead_name: ParagraphStyle
    letterhead: ParagraphStyle
    letterhead_right: ParagraphStyle
    notice: ParagraphStyle
    bullet: ParagraphStyle


@cache
def _styles() -> _Styles:
    base = ParagraphStyle(
        "body",
        fontName=FONT,
        bulletFontName=FONT,
        fontSize=9.6,
        leading=13.4,
        textColor=INK,
        spaceAfter=4,
    )

    def derive(name: str, **kw: Any) -> ParagraphStyle:
        return ParagraphStyle(name, parent=base, **kw)

    return _Styles(
        body=base,
        small=derive("small", fontSize=8, leading=10.5, textColor=MUTED),
        label=derive("label", fontSize=8.6, leading=12.4, textColor=MUTED, spaceAfter=0),
        value=derive("value", spaceAfter=0),
        cell=derive("cell", fontSize=8.8, leading=11.6, spaceAfter=0),
        cell_head=derive(
            "cell_head", fontName=FONT_BOLD, fontSize=8, leading=10.5, textColor=MUTED, spaceAfter=0
        ),
        title=derive("title", fontName=FONT_BOLD, fontSize=15, leading=19, spaceAfter=2),
        subtitle=derive("subtitle", fontSize=10, leading=14, textColor=INK, spaceAfter=8),
        h2=derive(
            "h2",
            fontName=FONT_BOLD,
            fontSize=11,
            leading=14,
            textColor=HEADING,
            spaceBefore=10,
            spaceAfter=1,
            keepWithNext=1,
        ),
        h3=derive(
            "h3",
            fontName=FONT_BOLD,
            fontSize=9.4,
            leading=13,
            textColor=INK,
            spaceBefore=6,
            spaceAfter=2,
            keepWithNext=1,
        ),
        opinion=derive(
            "opinion",
            fontName=FONT_ITALIC,
            backColor=SHADE,
            borderPadding=(3, 6, 4, 6),
            leftIndent=6,
            rightIndent=6,
            spaceAfter=6,
        ),
        opinion_label=derive(
            "opinion_label",
            fontName=FONT_BOLD,
            fontSize=8.6,
            textColor=HEADING,
            spaceBefore=6,
            spaceAfter=5,
            keepWithNext=1,
        ),
        callout=derive(
            "callout",
            backColor=SHADE,
            borderPadding=(3, 6, 4, 6),
            leftIndent=6,
            rightIndent=6,
            spaceAfter=6,
        ),
        quote=derive("quote", fontName=FONT_ITALIC, leftIndent=14, rightIndent=14, spaceAfter=6),
        letterhead_name=derive(
            "lh_name", fontName=FONT_BOLD, fontSize=15, leading=19, textColor=HEADING, spaceAfter=2
        ),
        letterhead=derive("lh", fontSize=8.6, leading=11.5, textColor=MUTED, spaceAfter=0),
        letterhead_right=derive(
            "lh_r", fontSize=8.6, leading=11.5, textColor=MUTED, alignment=TA_RIGHT, spaceAfter=0
        ),
        notice=derive(
            "notice",
            fontName=FONT_BOLD,
            textColor=MARK_RED,
            borderColor=MARK_RED,
            borderWidth=0.8,
            borderPadding=(5, 7, 6, 7),
            leftIndent=7,
            rightIndent=7,
            spaceBefore=4,
            spaceAfter=10,
        ),
        bullet=derive("bullet", leftIndent=12, bulletIndent=2, spaceAfter=1, alignment=TA_LEFT),
    )


# --------------------------------------------------------------------------- page furniture


DRAFT_MARK = "Draft – not signed"


def _make_canvas_class(record_ref: str, title: str, draft_mark: str | None = None) -> type[Canvas]:
    """A canvas that draws the marking and footer on every page, with "Page X of Y" (and,
    for a preview, a large diagonal draft mark)."""
    marking = f"{MARKING}: {title}".upper()

    class _LetterCanvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 - reportlab API
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for number, state in enumerate(self._pages, start=1):
                self.__dict__.update(state)
                self._furniture(number, total)
                super().showPage()
            super().save()

        def _furniture(self, number: int, total: int) -> None:
            self.saveState()
            # protective marking, top of every page
            self.setFillColor(MARK_RED)
            self.setFont(FONT_BOLD, 8.5)
            self.drawCentredString(PAGE_W / 2, PAGE_H - 11 * mm, marking)
            self.setStrokeColor(RULE)
            self.setLineWidth(0.5)
            self.line(MARGIN_X, PAGE_H - 13.5 * mm, PAGE_W - MARGIN_X, PAGE_H - 13.5 * mm)
            # footer: reference and page number, then the marking again
            y = 13 * mm
            self.line(MARGIN_X, y + 4 * mm, PAGE_W - MARGIN_X, y + 4 * mm)
            self.setFillColor(MUTED)
            self.setFont(FONT, 7.6)
            self.drawString(MARGIN_X, y, f"Record reference {record_ref}")
            self.drawRightString(PAGE_W - MARGIN_X, y, f"Page {number} of {total}")
            self.setFillColor(MARK_RED)
            self.setFont(FONT_BOLD, 7)
            self.drawCentredString(PAGE_W / 2, y - 4.5 * mm, MARKING)
            if draft_mark:  # readable (and extractable) line, then the diagonal watermark
                self.setFillColor(MARK_RED)
                self.setFont(FONT_BOLD, 8.5)
                self.drawCentredString(PAGE_W / 2, PAGE_H - 6.5 * mm, f"{draft_mark} – preview")
                self.setFillColor(MUTED)
                self.setFillAlpha(0.25)
                self.setFont(FONT_BOLD, 44)
                self.translate(PAGE_W / 2, PAGE_H / 2)
                self.rotate(40)
                self.drawCentredString(0, 0, draft_mark)
            self.restoreState()

    return _LetterCanvas


# --------------------------------------------------------------------------- building blocks


def _literal(text: str) -> str:
    """Fixed wording from a template made safe for a Paragraph (newlines become breaks)."""
    return escape(text).replace("\n", "<br/>")


class _Builder:
    """Renders one letter: walks the template's sections and turns blocks into flowables."""

    def __init__(self, inp: LetterInput, template: LetterTemplate) -> None:
        self.inp = inp
        self.tpl = template
        self.a = inp.answers
        self.st = _styles()
        self.story: list[Flowable] = []

    # ---- answers and values
    def _label(self, field: str, token: str) -> str:
        try:
            label = self.inp.option_label(field, token)
        except Exception:  # a missing label must not stop the letter
            label = ""
        return label or token.replace("_", " ")

    def _holds(self, cond: Condition | None) -> bool:
        return cond is None or holds(cond, self.a, self.inp.outcome)

    def _raw(self, name: str, row: Mapping[str, Any] | None) -> Any:
        if row is not None:
            return row.get(name)
        if name.startswith("outcome."):
            return self.inp.outcome.get(name.removeprefix("outcome."))
        if name.startswith("referrer."):
            return getattr(self.inp.referrer, name.removeprefix("referrer."))
        if name.startswith("practice."):
            return getattr(self.inp.practice, name.removeprefix("practice."))
        context = {
            "record_id": self.inp.record_id,
            "signed": self.inp.signed_at,
            "completed": self.inp.completed_at,
            "child_age": self.inp.child_age,
        }
        if name in context:
            return context[name]
        return self.a.get(name)

    def value(
        self, ph: Placeholder, row: Mapping[str, Any] | None, extra: Mapping[str, str]
    ) -> str:
        """The markup a placeholder stands for; "" when there is nothing to print."""
        if ph.name in extra:
            return extra[ph.name]
        if "+" in ph.name:
            parts = [
                self.value(replace(ph, name=n, default=""), row, extra) for n in ph.name.split("+")
            ]
            return escape(ph.sep).join(p for p in parts if p) or _literal(ph.default)
        raw = self._raw(ph.name, row)
        if is_empty(raw):
            return _literal(ph.default)
        fmt = ph.format
        if fmt in ("text", "label", "phrase"):
            values = [str(v) for v in raw] if isinstance(raw, list | tuple) else [raw]
            if ph.only:
                values = [v for v in values if v in ph.only]
            values = [v for v in values if v not in ph.exclude]
            if not values:
                return _literal(ph.default)
            if fmt == "label":
                return _t(ph.sep.join(self._label(ph.name, str(v)) for v in values))
            if fmt == "phrase":
                # yes/no answers are looked up as "yes" and "no"
                values = [("yes" if v else "no") if isinstance(v, bool) else v for v in values]
                words = [self.tpl.phrases[ph.table].get(str(v)) for v in values]
                if any(w is None for w in words) and ph.default:
                    return _literal(ph.default)
                return escape(ph.sep.join(w or str(v) for w, v in zip(words, values, strict=True)))
            if len(values) == 1 and isinstance(values[0], bool):
                return "Yes" if values[0] else "No"
            return _t(ph.sep.join(str(v) for v in values))
        if fmt == "yesno":
            return "Yes" if raw else "No"
        if fmt == "years":
            age = int(raw)
            return escape(f"{age} year{'s' if age != 1 else ''}")
        if fmt == "date":
            return escape(_fmt_date(raw))
        if fmt == "datetime":
            return escape(_fmt_datetime(raw))
        if fmt == "stamp":
            when = _local(raw) if isinstance(raw, datetime) else None
            if when is None:
                return escape(_fmt_datetime(raw))
            return escape(f"{when.day} {when:%B %Y}, {when:%H:%M}")
        if fmt == "nhs":
            return escape(_fmt_nhs(raw))
        if fmt == "month_after":
            day = _parse_date(raw)
            return escape(_fmt_date(add_months(day, 1))) if day else ""
        raise ValueError(f"unknown format {fmt}")  # the loader rejects these

    def render(
        self,
        text: Text | None,
        row: Mapping[str, Any] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> str:
        """A template text as Paragraph markup ("" when it has nothing to say)."""
        if text is None:
            return ""
        extra = extra or {}
        out: list[str] = []
        for part in text.parts:
            if isinstance(part, str):
                out.append(_literal(part))
            elif isinstance(part, Placeholder):
                out.append(self.value(part, row, extra))
            else:
                pieces = [
                    _literal(p) if isinstance(p, str) else self.value(p, row, extra) for p in part
                ]
                filled = all(
                    piece.strip()
                    for p, piece in zip(part, pieces, strict=True)
                    if isinstance(p, Placeholder)
                )
                if filled:
                    out.extend(pieces)
        return "".join(out).strip()

    # ---- flowables
    def p(self, markup: str, style: ParagraphStyle | None = None) -> None:
        self.story.append(Paragraph(markup, style or self.st.body))

    def style(self, name: str) -> ParagraphStyle:
        style: ParagraphStyle = getattr(self.st, "opinion_label" if name == "label" else name)
        return style

    def h2(self, text: str, keep_space: bool = True) -> None:
        if keep_space:  # start a new page rather than strand a heading at the foot
            self.story.append(CondPageBreak(30 * mm))
        self.story.append(Paragraph(escape(text), self.st.h2))
        self.story.append(
            HRFlowable(width="100%", thickness=0.6, color=RULE, spaceBefore=1, spaceAfter=5)
        )

    def fields(self, rows: Iterable[tuple[str, str]]) -> None:
        """A two-column label/value list; values are already-escaped markup; empty ones skipped."""
        data = [
            [Paragraph(escape(label), self.st.label), Paragraph(value, self.st.value)]
            for label, value in rows
            if value
        ]
        if not data:
            return
        table = Table(data, colWidths=[LABEL_W, CONTENT_W - LABEL_W], splitInRow=1, hAlign="LEFT")
        table.setStyle(
            TableStyle(
                [
                    ("FONT", (0, 0), (-1, -1), FONT, 9),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("LEFTPADDING", (0, 0), (-1, -1), 0),
                    ("RIGHTPADDING", (0, 0), (-1, -1), 6),
                    ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                    ("TOPPADDING", (0, 0), (0, -1), 2.3),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
                ]
            )
        )
        self.story.append(table)
        self.story.append(Spacer(1, 4))

    def grid(
        self, header: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[float]
    ) -> None:
        """A table whose header row repeats when it splits across pages (cells are markup)."""
        total = sum(widths)
        col_w = [CONTENT_W * w / total for w in widths]
        data: list[list[Flowable]] = [[Paragraph(_t(h), self.st.cell_head) for h in header]]
        data += [[Paragraph(cell or "–", self.st.cell) for cell in row] for row in rows]
        table = Table(data, colWidths=col_w, repeatRows=1, splitInRow=1, hAlign="LEFT")
        table.setStyle(
            TableStyle(
                [
                    ("FONT", (0, 0), (-1, -1), FONT, 9),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("LINEBELOW", (0, 0), (-1, 0), 0.7, HEADING),
                    ("LINEBELOW", (0, 1), (-1, -1), 0.3, RULE),
                    ("LEFTPADDING", (0, 0), (-1, -1), 3),
                    ("RIGHTPADDING", (0, 0), (-1, -1), 5),
                    ("TOPPADDING", (0, 0), (-1, -1), 3),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
                    ("LEFTPADDING", (0, 0), (0, -1), 0),
                ]
            )
        )
        self.story.append(table)
        self.story.append(Spacer(1, 6))

    def bullets(self, items: Iterable[str]) -> None:
        for item in items:
            self.story.append(Paragraph(item, self.st.bullet, bulletText="•"))
        self.story.append(Spacer(1, 3))

    # ---- template walk
    def build(self) -> list[Flowable]:
        for section in self.tpl.sections:
            if not self._holds(section.when):
                continue
            outer = self.story
            if section.keep_together:
                self.story = []
            if section.heading:
                # inside KeepTogether a CondPageBreak upsets its height sums (the last line
                # spilled onto a page of its own); KeepTogether moves the heading anyway
                self.h2(section.heading, keep_space=not section.keep_together)
            for block in section.blocks:
                if self._holds(block.when):
                    self.block(block)
            if section.keep_together:
                kept, self.story = self.story, outer
                self.story.append(KeepTogether(kept))
        return self.story

    def block(self, b: Block) -> None:
        kind = b.type
        if kind == "paragraph":
            markup = self.render(b.text)
            if b.bold and markup:
                markup = f"<b>{markup}</b>"
            if b.lead:
                # a lead ending in a space keeps it inside the bold run (as v1 letters did)
                gap = "" if b.lead.endswith(" ") else " "
                markup = f"<b>{escape(b.lead)}</b>" + (f"{gap}{markup}" if markup else "")
            if markup:
                self.p(markup, self.style(b.style))
        elif kind == "fields":
            self.fields((i.label, self.render(i.text)) for i in b.items if self._holds(i.when))
        elif kind == "bullets":
            items = [self.render(i.text) for i in b.items if self._holds(i.when)]
            if b.field:
                values = self.a.get(b.field) or []
                tokens = [values] if isinstance(values, str) else [str(v) for v in values]
                items += [_t(self._label(b.field, t)) for t in tokens]
            items = [i for i in items if i] or ([_literal(b.empty)] if b.empty else [])
            if items:
                self.bullets(items)
        elif kind == "list":
            items = [self.render(i.text) for i in b.items if self._holds(i.when)]
            items = [i for i in items if i]
            if items:
                markup = self.render(b.text, extra={"items": _literal(b.join).join(items)})
                self.p(markup, self.style(b.style))
        elif kind == "longtext":
            blocks = _blocks(self.a.get(b.field)) or ([_literal(b.empty)] if b.empty else [])
            for markup in blocks:
                self.p(markup, self.style(b.style))
        elif kind == "table":
            rows = [r for r in (self.a.get(b.field) or []) if isinstance(r, Mapping)]
            if rows:
                self.grid(
                    [c.heading for c in b.columns],
                    [[self.render(c.value, row=r) for c in b.columns] for r in rows],
                    [c.width for c in b.columns],
                )
            elif b.empty:
                self.p(_literal(b.empty))
        elif kind == "answer_groups":
            names = self.tpl.phrases.get(b.names, {})
            groups: list[tuple[str, str]] = []
            for group in b.items:
                hits = [f for f in b.fields if self.a.get(f) == group.value]
                groups.append((group.label, "<br/>".join(escape(names.get(f, f)) for f in hits)))
            self.fields(groups)
        elif kind == "space":
            self.story.append(Spacer(1, b.height))
        elif b.name == "letterhead":
            self.letterhead()
        elif b.name == "previous_concerns":
            self.previous(b)
        elif b.name == "signature":
            self.signature()

    # ---- the parts that are not the form's: letterhead, previous concerns, signature
    def letterhead(self) -> None:
        pr = self.inp.practice
        left: list[Flowable] = [Paragraph(_t(pr.name), self.st.letterhead_name)]
        left += [
            Paragraph(_t(line), self.st.letterhead)
            for line in pr.address.splitlines()
            if line.strip()
        ]
        right = [
            Paragraph(f"Telephone {_t(pr.phone)}", self.st.letterhead_right),
            Paragraph(f"Secure email {_t(pr.secure_email)}", self.st.letterhead_right),
            Paragraph(f"ODS code {_t(pr.ods_code)}", self.st.letterhead_right),
        ]
        table = Table([[left, right]], colWidths=[CONTENT_W * 0.58, CONTENT_W * 0.42])
        table.setStyle(
            TableStyle(
                [
                    ("FONT", (0, 0), (-1, -1), FONT, 9),
                    ("VALIGN", (0, 0), (-1, -1), "BOTTOM"),
                    ("LEFTPADDING", (0, 0), (-1, -1), 0),
                    ("RIGHTPADDING", (0, 0), (-1, -1), 0),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
                    ("LINEBELOW", (0, 0), (-1, 0), 1.2, HEADING),
                ]
            )
        )
        self.story.append(table)
        self.story.append(Spacer(1, 10))

    def previous(self, b: Block) -> None:
        """Earlier records about the child from gpshare's own chronology (dates and decisions)."""
        texts = b.texts or {}
        concerns = sorted(self.inp.prior_concerns, key=lambda c: c.date)
        if not concerns:
            self.p(self.render(texts.get("none")))
            return
        key = "one" if len(concerns) == 1 else "many"
        self.p(self.render(texts.get(key), extra={"count": str(len(concerns))}))
        pathways = self.tpl.phrases.get(b.names, {})
        self.grid(
            ["Date", "Outcome", "Decision", "Review by", "Recorded by"],
            [
                [
                    escape(_fmt_date(c.date)),
                    _t(pathways.get(c.pathway, c.pathway.replace("_", " "))),
                    _t(self._label("decision", c.decision)),
                    escape(_fmt_date(c.review_date)) if c.review_date else "–",
                    _t(c.author),
                ]
                for c in concerns
            ],
            [2.4, 3.0, 3.6, 2.4, 3.0],
        )

    def signature(self) -> None:
        r = self.inp.referrer
        signed = _local(self.inp.signed_at)
        completed = _local(self.inp.completed_at)
        lines: list[Flowable] = [
            Spacer(1, 8),
            Paragraph("Yours sincerely,", self.st.body),
            Spacer(1, 4),
            HRFlowable(width="55%", thickness=0.6, color=RULE, hAlign="LEFT", spaceAfter=4),
            Paragraph(f"<b>{_t(r.full_name)}</b>", self.st.body),
        ]
        rows = [
            _t(r.role_title),
            escape(f"GMC number {r.gmc_number}") if r.gmc_number else "",
            _t(self.inp.practice.name),
            escape(f"Signed {signed.day} {signed:%B %Y} at {signed:%H:%M}"),
            escape(f"Assessment completed {completed.day} {completed:%B %Y} at {completed:%H:%M}"),
        ]
        lines += [Paragraph(x, self.st.value) for x in rows if x]
        lines.append(Spacer(1, 3))
        lines.append(Paragraph(escape(SIGNATURE_NOTE), self.st.small))
        self.story.extend(lines)


# --------------------------------------------------------------------------- entry point


def default_template() -> LetterTemplate:
    """The version 1 letter template: letters built before templates existed were all v1."""
    return template_for_form(load_form_by_id(DEFAULT_FORM_ID, 1))


def letter_template_for(form: Form) -> LetterTemplate:
    """The letter template of a form version (raises LetterTemplateError if it is broken)."""
    return template_for_form(form)


def document_title(inp: LetterInput) -> str:
    """The letter's title as plain text (it depends on the outcome for some templates)."""
    template = inp.template or default_template()
    return unescape(_Builder(inp, template).render(template.document_title))


def build_letter(inp: LetterInput, *, draft_mark: str | None = None) -> bytes:
    """Build the (unsigned) referral letter PDF from the record's letter template;
    `draft_mark` (for a preview before signing) is written across every page."""
    _register_fonts()
    template = inp.template or default_template()
    builder = _Builder(inp, template)
    story = builder.build()
    title = unescape(builder.render(template.document_title)) or "Safeguarding referral"
    buf = BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=MARGIN_X - FRAME_PAD,
        rightMargin=MARGIN_X - FRAME_PAD,
        topMargin=19 * mm,
        bottomMargin=22 * mm,
        title=title,
        subject=f"{title} {short_reference(inp.record_id)}",
        author=inp.referrer.full_name,
        creator="gpshare",
        producer="gpshare",
        initialFontName=FONT,
        initialFontSize=9.6,
        invariant=True,
    )
    doc.build(story, canvasmaker=_make_canvas_class(inp.record_id, title, draft_mark))
    return buf.getvalue()
