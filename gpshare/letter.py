"""The safeguarding referral letter (PDF, reportlab platypus).

``build_letter`` turns a completed record into an A4 letter to children's
services, laid out as in domain.md §12.3: letterhead, "OFFICIAL – SENSITIVE"
marking on every page, recipient, date and time, referrer, child, family,
reason for referral (facts apart from the clinician's opinion), immediate risk,
previous concerns, the consent and information-sharing statement, informing the
family, what is requested, and a signature block drawn in the page content
(Qt's PDF viewer does not draw signature widgets).  Every page has a footer
with the record reference and "Page X of Y".  The PDF is unsigned here;
``signing.sign_pdf`` signs it afterwards.

Minimum necessary — ``included_items`` (the clinician's checklist) decides what
is printed.  Anything not ticked is left out, and the consent statement lists
the kinds of information that were held but deliberately not included:

===================== ======================================================
item                  what it controls
===================== ======================================================
child_identity        child's names and other names, date of birth / expected
                      date of delivery, gender, NHS number, address and
                      postcode, first language and interpreter; also the
                      "Child:" line under the title.  Without it the Child
                      section says the details are not included (the age
                      is still given).
school                the school line in the Child section.
parent_identities     the parents/carers table (names, relationship,
                      parental responsibility, address, telephone).
household             the household members table.
risk_person_identity  the "person(s) who may pose a risk" table.
reasons               the Reason for referral section: facts
                      (concern_narrative), source, the child's own words,
                      categories and flags, the clinician's opinion, the
                      threshold view and the advice received.  Without it the
                      section asks the reader to contact the referrer.
health_information    the sexual-health / exploitation indicators (sh_*
                      answers) under Reason for referral.  Free text is the
                      clinician's own responsibility: the narrative is
                      printed whole under ``reasons``.
parental_factors      the "Parental and household factors" line (the
                      domestic-abuse flag) under Reason for referral.
===================== ======================================================

Always printed: letterhead, recipient, referrer, immediate-risk statement and
telephone-referral confirmation, previous concerns (dates and decisions only),
the consent statement, informing the family, information that must not be
disclosed to the family, the request and the signature block.

All user text is escaped before it reaches a platypus ``Paragraph`` (which
would otherwise read ``<b>`` or ``&`` as markup).  Right-to-left runs (Arabic,
Hebrew) are put in visual order, and Arabic letters are given their joined
presentation forms, because reportlab lays text out left to right without
shaping; text extraction then yields presentation forms (NFKC-equivalent to
the typed letters).  Only the shipped DejaVu fonts are used, all embedded.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

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

__all__ = [
    "SECTION_HEADINGS",
    "LetterInput",
    "PracticeDetails",
    "PriorConcern",
    "Referrer",
    "build_letter",
    "letter_filename",
    "missing_practice_details",
    "short_reference",
]

FONTS_DIR = Path(__file__).resolve().parent / "fonts"
FONT = "DejaVuSans"
FONT_BOLD = "DejaVuSans-Bold"
FONT_ITALIC = "DejaVuSans-Oblique"

MARKING = "OFFICIAL – SENSITIVE: safeguarding referral"
SIGNATURE_NOTE = "Digitally signed — verify in your PDF reader's signature panel"
ACK_REQUEST = "Please acknowledge receipt within one working day and let us know your decision."

SECTION_HEADINGS: tuple[str, ...] = (
    "Referrer",
    "Child",
    "Parents, carers and household",
    "Reason for referral",
    "Immediate risk",
    "Previous concerns",
    "Consent and information-sharing statement",
    "Informing the family",
    "What is requested",
)

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


# --------------------------------------------------------------------------- fixed wording

PATHWAY_LABELS = {
    "emergency": "Emergency referral",
    "legal_duty": "Disclosure required by law",
    "referral": "Referral",
    "limited_sharing": "Limited information shared",
    "early_help": "Early help referral",
    "monitor": "Not shared – kept under review",
}

ART6 = {
    "public_task": "Article 6(1)(e) public task",
    "legal_obligation": "Article 6(1)(c) legal obligation",
    "vital_interests": "Article 6(1)(d) vital interests",
}

ART9 = {
    "sch1_para18_safeguarding": (
        "Article 9(2)(g) with Data Protection Act 2018 Schedule 1 paragraph 18 "
        "(safeguarding of children and individuals at risk)"
    ),
    "health_social_care": (
        "Article 9(2)(h) with Data Protection Act 2018 Schedule 1 paragraph 2 "
        "(health or social care purposes)"
    ),
    "vital_interests": "Article 9(2)(c) vital interests",
}

PARA18_REASON = {
    "cannot_give": "consent cannot be given",
    "cannot_reasonably_obtain": "the practice cannot reasonably be expected to obtain consent",
    "would_prejudice": "obtaining consent would prejudice the protection of the child",
}

ARTICLE8_AIM = {
    "rights_of_others": "protection of the rights and freedoms of others (the child)",
    "health": "protection of health",
    "prevention_of_crime": "prevention of disorder or crime",
}

LEGAL_REQUIREMENT = {
    "fgm_mandatory_report": (
        "the mandatory duty to report female genital mutilation in a girl under 18 "
        "(Female Genital Mutilation Act 2003, section 5B)"
    ),
    "court_order": "a court order",
    "s47_request": (
        "a request for information for enquiries under section 47 of the Children Act 1989"
    ),
    "other_statute": "a statutory requirement to disclose",
}

SH_INDICATORS = {
    "sh_partner_age_gap": "Partner much older, or a significant age gap",
    "sh_gifts_money_substances": "Gifts, money, alcohol, drugs or accommodation given",
    "sh_control_isolation": "Controlling behaviour or isolation from family and friends",
    "sh_coercion_nonconsensual": "Coercion or non-consensual sex",
    "sh_going_missing": "Going missing from home or school",
    "sh_substance_use": "Alcohol or drug use",
    "sh_mental_health_self_harm": "Mental health concerns or self-harm",
    "sh_repeat_sti_pregnancy": "Repeated sexually transmitted infections or pregnancy",
    "sh_online_images": "Sexual images shared online",
    "sh_accompanied_by_older_person": "Attends accompanied by an older person",
}

CONSENT_SUBJECT = {
    "child": "the child",
    "parent_with_pr": "the parent or carer with parental responsibility",
    "both": "the child and the parent or carer with parental responsibility",
}

COMPETENCE = {
    "gillick_competent": "assessed as competent to decide (Gillick)",
    "not_competent": "assessed as not competent to decide",
    "presumed_capable_16_17": "presumed capable at 16–17",
    "not_assessed": "competence not assessed",
}

ITEM_NAMES = {
    "child_identity": "the child's identifying details",
    "parent_identities": "parents' and carers' identities",
    "risk_person_identity": "the identity of the person who may pose a risk",
    "reasons": "the detailed reasons for concern",
    "health_information": "health information",
    "parental_factors": "parental factors",
    "household": "household members",
    "school": "the child's school",
}

PARENTAL_FACTOR_FLAGS = frozenset({"domestic_abuse"})


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


def _make_canvas_class(record_ref: str, draft_mark: str | None = None) -> type[Canvas]:
    """A canvas that draws the marking and footer on every page, with "Page X of Y" (and,
    for a preview, a large diagonal draft mark)."""

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
            self.drawCentredString(PAGE_W / 2, PAGE_H - 11 * mm, MARKING.upper())
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
            self.drawCentredString(PAGE_W / 2, y - 4.5 * mm, "OFFICIAL – SENSITIVE")
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


class _Builder:
    """Collects flowables for one letter."""

    def __init__(self, inp: LetterInput) -> None:
        self.inp = inp
        self.a = inp.answers
        self.st = _styles()
        self.story: list[Flowable] = []
        self.included = set(self._list("included_items"))
        self.closing: list[Flowable] = []

    # ---- answer access
    def _str(self, key: str) -> str:
        value = self.a.get(key)
        return "" if value is None else str(value).strip()

    def _list(self, key: str) -> list[str]:
        value = self.a.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            return [value] if value else []
        return [str(v) for v in value]

    def _people(self, key: str) -> list[Mapping[str, Any]]:
        value = self.a.get(key) or []
        return [p for p in value if isinstance(p, Mapping)]

    def _label(self, field: str, token: str) -> str:
        try:
            label = self.inp.option_label(field, token)
        except Exception:  # a missing label must not stop the letter
            label = ""
        return label or token.replace("_", " ")

    def _labels(self, field: str) -> list[str]:
        return [self._label(field, t) for t in self._list(field)]

    def has(self, item: str) -> bool:
        return item in self.included

    # ---- flowables
    def p(self, markup: str, style: ParagraphStyle | None = None) -> None:
        self.story.append(Paragraph(markup, style or self.st.body))

    def h2(self, text: str) -> None:
        self.story.append(CondPageBreak(30 * mm))
        self.story.append(Paragraph(escape(text), self.st.h2))
        self.story.append(
            HRFlowable(width="100%", thickness=0.6, color=RULE, spaceBefore=1, spaceAfter=5)
        )

    def h3(self, text: str) -> None:
        self.story.append(Paragraph(escape(text), self.st.h3))

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

    # ---- sections
    def build(self) -> list[Flowable]:
        self.letterhead()
        self.addressee()
        self.referrer()
        self.child()
        self.family()
        self.reasons()
        self.immediate_risk()
        self.previous()
        self.consent()
        self.informing()
        self.request()
        self.signature()
        return self.story

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

    def addressee(self) -> None:
        inp = self.inp
        recipient = self._str("recipient_name")
        rtype = self._str("recipient_type")
        method = self._str("method")
        signed = _local(inp.signed_at)
        self.fields(
            [
                ("To", _t(recipient) or "Children's social care"),
                ("Recipient", _t(self._label("recipient_type", rtype)) if rtype else ""),
                ("Sent by", _t(self._label("method", method)) if method else ""),
                ("Date and time", escape(f"{signed.day} {signed:%B %Y}, {signed:%H:%M}")),
                ("Our reference", _t(inp.record_id)),
            ]
        )
        self.story.append(Spacer(1, 4))
        self.p("Safeguarding referral", self.st.title)
        if self.has("child_identity"):
            name = self.child_name()
            parts = [p for p in (name, self.dob_text(short=True), self.nhs_text()) if p]
            if parts:
                self.p("Child: " + " · ".join(parts), self.st.subtitle)
        if self.phone_confirmation():
            self.p(_t(self.phone_confirmation()), self.st.notice)
        self.p("Dear colleague,")
        self.p(
            "I am writing to refer the child described below to you because I am concerned "
            "about their safety and welfare. The information that follows separates what "
            "was seen, heard or recorded (facts) from my professional opinion."
        )

    def child_name(self) -> str:
        names = " ".join(
            n for n in (self._str("child_given_name"), self._str("child_family_name")) if n
        )
        return _t(names)

    def dob_text(self, short: bool = False) -> str:
        if self._str("nhs_number_unknown_reason") == "unborn" or (
            not self._str("date_of_birth") and self._str("expected_delivery_date")
        ):
            edd = _fmt_date(self._str("expected_delivery_date"))
            return escape(f"unborn, expected {edd}" if short else edd)
        dob = _fmt_date(self._str("date_of_birth"))
        if not dob:
            return ""
        return escape(f"born {dob}" if short else dob)

    def nhs_text(self) -> str:
        nhs = self._str("nhs_number")
        if nhs:
            return escape(f"NHS number {_fmt_nhs(nhs)}")
        return ""

    def phone_confirmation(self) -> str:
        person = self._str("person_spoken_to")
        when = self.a.get("phone_referral_time")
        if not person and not when:
            return ""
        if "csc_phoned" not in self._list("urgent_actions") and not (person and when):
            return ""
        return (
            f"This letter confirms the telephone referral to {person or 'your duty team'} "
            f"at {_fmt_datetime(when) if when else 'the time given below'}."
        )

    def referrer(self) -> None:
        r = self.inp.referrer
        self.h2("Referrer")
        self.fields(
            [
                ("Name", _t(r.full_name)),
                ("Role", _t(r.role_title)),
                ("GMC number", _t(r.gmc_number or "")),
                ("Practice", _t(self.inp.practice.name)),
                ("Contact", _t(r.contact)),
            ]
        )

    def child(self) -> None:
        self.h2("Child")
        age = self.inp.child_age
        age_text = "" if age is None else escape(f"{age} year{'s' if age != 1 else ''}")
        school = _t(self._str("school")) if self.has("school") else ""
        if not self.has("child_identity"):
            self.p(
                "The child's identifying details are not included in this letter. Please "
                "contact the referrer if you need them."
            )
            self.fields([("Age", age_text), ("School", school)])
            return
        unborn = self._str("nhs_number_unknown_reason") == "unborn"
        nhs = self._str("nhs_number")
        if nhs:
            nhs_text = escape(_fmt_nhs(nhs))
        else:
            reason = self._str("nhs_number_unknown_reason")
            nhs_text = escape(
                "Not known"
                + (f" ({self._label('nhs_number_unknown_reason', reason)})" if reason else "")
            )
        address = _t(self._str("address"))
        postcode = self._str("postcode")
        if postcode:
            address = f"{address}<br/>{_t(postcode)}" if address else _t(postcode)
        interpreter = self.a.get("interpreter_needed")
        gender = self._str("gender")
        self.fields(
            [
                ("Name", self.child_name()),
                ("Other names", _t(self._str("child_other_names"))),
                ("Expected date of delivery" if unborn else "Date of birth", self.dob_text()),
                ("Age", "" if unborn else age_text),
                ("Gender", _t(self._label("gender", gender)) if gender else ""),
                ("NHS number", nhs_text),
                ("Address", address),
                ("School", school),
                ("First language", _t(self._str("first_language"))),
                (
                    "Interpreter needed",
                    "" if interpreter is None else ("Yes" if interpreter else "No"),
                ),
                ("Registered GP practice", _t(self.inp.practice.name)),
            ]
        )

    def family(self) -> None:
        self.h2("Parents, carers and household")
        printed = False
        parents = self._people("parents_carers")
        if self.has("parent_identities"):
            self.h3("Parents and carers")
            if parents:
                rows = [
                    [
                        _t(p.get("name", "")),
                        _t(p.get("relationship", "")),
                        "Yes" if p.get("parental_responsibility") else "No",
                        _t(p.get("address", "")),
                        _t(p.get("phone", "")),
                    ]
                    for p in parents
                ]
                self.grid(
                    ["Name", "Relationship", "Parental\nresponsibility", "Address", "Telephone"],
                    rows,
                    [3.0, 2.2, 2.7, 3.8, 2.6],
                )
            else:
                self.p("None recorded.")
            printed = True
        household = self._people("household_members")
        if self.has("household") and household:
            self.h3("Household members")
            self.grid(
                ["Name", "Relationship to child", "Date of birth"],
                [
                    [
                        _t(p.get("name", "")),
                        _t(p.get("relationship", "")),
                        escape(_fmt_date(p.get("date_of_birth"))),
                    ]
                    for p in household
                ],
                [4, 4, 3],
            )
            printed = True
        risk = self._people("person_posing_risk")
        if self.has("risk_person_identity") and risk:
            self.h3("Person(s) who may pose a risk to the child")
            self.grid(
                ["Name", "Relationship to child", "Date of birth", "Address"],
                [
                    [
                        _t(p.get("name", "")),
                        _t(p.get("relationship", "")),
                        escape(_fmt_date(p.get("date_of_birth"))),
                        _t(p.get("address", "")),
                    ]
                    for p in risk
                ],
                [3.4, 3, 2.2, 4.4],
            )
            printed = True
        if not printed:
            self.p("Details of the family and household are not included in this letter.")

    def reasons(self) -> None:
        self.h2("Reason for referral")
        if not self.has("reasons"):
            self.p(
                "The detailed reasons for concern are not included in this letter. Please "
                "telephone the referrer to discuss them."
            )
            return
        categories = self._labels("categories")
        flags = [
            self._label("additional_flags", f)
            for f in self._list("additional_flags")
            if f not in PARENTAL_FACTOR_FLAGS
        ]
        parental = [
            self._label("additional_flags", f)
            for f in self._list("additional_flags")
            if f in PARENTAL_FACTOR_FLAGS
        ]
        self.fields(
            [
                ("Category of concern", _t(", ".join(categories))),
                ("Other concerns", _t(", ".join(flags))),
                (
                    "Parental and household factors",
                    _t(", ".join(parental)) if self.has("parental_factors") else "",
                ),
                ("Source of information", _t(", ".join(self._labels("concern_source")))),
            ]
        )
        self.h3("What was seen, heard or recorded (facts)")
        for block in _blocks(self.a.get("concern_narrative")) or ["Not recorded."]:
            self.p(block)
        words = self._str("child_words")
        if words:
            self.h3("The child's own words")
            self.p(f"“{_t(words)}”", self.st.quote)
            self.p("Recorded verbatim.", self.st.small)
        if self.has("health_information"):
            self.health_indicators()

        opinion = _blocks(self.a.get("concern_opinion"))
        threshold = self._str("threshold_view")
        if opinion or threshold:
            self.story.append(Paragraph("Clinician's opinion", self.st.opinion_label))
            for block in opinion:
                self.p(block, self.st.opinion)
            if threshold:
                self.p(
                    escape("Threshold, in my judgement: ")
                    + _t(self._label("threshold_view", threshold))
                    + ".",
                    self.st.opinion,
                )
        if self.a.get("advice_sought"):
            who = ", ".join(
                x
                for x in (
                    self._str("advisor_name"),
                    self._label("advisor_role", self._str("advisor_role"))
                    if self._str("advisor_role")
                    else "",
                )
                if x
            )
            when = _fmt_date(self._str("advice_date"))
            anon = self.a.get("advice_anonymised")
            how = ""
            if anon is not None:
                how = " (the child was not identified)" if anon else " (the child was identified)"
            self.h3("Advice sought before referring")
            self.p(
                _t(
                    f"Discussed with {who or 'a colleague'}"
                    + (f" on {when}" if when else "")
                    + how
                    + "."
                )
            )
            for block in _blocks(self.a.get("advice_summary")):
                self.p(block)

    def health_indicators(self) -> None:
        answered = [(key, self._str(key)) for key in SH_INDICATORS if self._str(key)]
        if not answered:
            return
        self.h3("Relevant health information: exploitation indicators")
        present = [SH_INDICATORS[k] for k, v in answered if v == "yes"]
        absent = [SH_INDICATORS[k] for k, v in answered if v == "no"]
        unasked = [SH_INDICATORS[k] for k, v in answered if v == "not_asked"]
        self.fields(
            [
                ("Present", "<br/>".join(escape(x) for x in present)),
                ("Not present", "<br/>".join(escape(x) for x in absent)),
                ("Not asked", "<br/>".join(escape(x) for x in unasked)),
            ]
        )

    def immediate_risk(self) -> None:
        self.h2("Immediate risk")
        if self.a.get("immediate_danger"):
            actions = []
            for token in self._list("urgent_actions"):
                actions.append(_t(self._label("urgent_actions", token)))
            self.p(
                "<b>I judged the child to be in immediate danger at the time of the assessment.</b>"
            )
            if actions:
                self.p("Actions already taken:")
                self.bullets(actions)
        else:
            self.p(
                "I did not judge the child to be in immediate danger at the time of the assessment."
            )
        confirmation = self.phone_confirmation()
        if confirmation:
            self.p(_t(confirmation))

    def previous(self) -> None:
        self.h2("Previous concerns")
        concerns = sorted(self.inp.prior_concerns, key=lambda c: c.date)
        if not concerns:
            self.p(
                "No earlier safeguarding concerns about this child are recorded by this practice in gpshare."
            )
            return
        self.p(
            escape(
                f"{len(concerns)} earlier concern{'s are' if len(concerns) != 1 else ' is'} "
                "recorded by this practice:"
            )
        )
        self.grid(
            ["Date", "Outcome", "Decision", "Review by", "Recorded by"],
            [
                [
                    escape(_fmt_date(c.date)),
                    _t(PATHWAY_LABELS.get(c.pathway, c.pathway.replace("_", " "))),
                    _t(self._label("decision", c.decision)),
                    escape(_fmt_date(c.review_date)) if c.review_date else "–",
                    _t(c.author),
                ]
                for c in concerns
            ],
            [2.4, 3.0, 3.6, 2.4, 3.0],
        )

    def consent(self) -> None:
        self.h2("Consent and information-sharing statement")
        basis = str(self.inp.outcome.get("consent_basis", ""))
        outcome = self._str("consent_outcome")
        subject = CONSENT_SUBJECT.get(self._str("consent_subject"), "the child or family")
        competence = COMPETENCE.get(self._str("child_competence"), "")
        if competence and self._str("consent_subject") in ("child", "both"):
            subject_text = f"{subject} ({competence})"
        else:
            subject_text = subject
        decision = self._str("decision")

        if decision == "required_by_law":
            requirement = LEGAL_REQUIREMENT.get(
                self._str("legal_requirement"), "a legal requirement"
            )
            self.p("<b>" + _t(f"This disclosure is required by law: {requirement}.") + "</b>")

        if basis == "consent_given":
            given_by = self._str("consent_given_by") or subject
            self.p(
                "<b>Consent given.</b> "
                + _t(f"Consent to share this information was given by {given_by}.")
            )
            if self._str("consent_scope"):
                self.p(escape("Scope of the consent: ") + _t(self._str("consent_scope")))
        elif basis == "shared_without_consent_refused" or outcome == "refused":
            self.p(
                "<b>Consent refused.</b> "
                + _t(
                    f"I asked {subject_text} for consent to share this information and it was refused."
                )
            )
            if self._str("refusal_reasons"):
                self.p(escape("Reasons given for the refusal: ") + _t(self._str("refusal_reasons")))
            self.balance("I have shared without consent because the balance favours sharing: ")
        elif basis == "shared_without_consent_not_sought" or self.a.get("consent_sought") is False:
            self.p("<b>Consent not sought.</b> " + escape("I did not ask for consent because:"))
            reasons = [
                _t(self._label("not_sought_reasons", r)) for r in self._list("not_sought_reasons")
            ]
            self.bullets(reasons or ["no reason recorded"])
            self.balance("I have shared without consent in the public interest: ")
        else:
            if outcome == "partly_given":
                self.p(
                    "<b>Consent partly given.</b> "
                    + _t(
                        f"{self._str('consent_given_by') or subject} agreed to share only: {self._str('consent_scope')}"
                    )
                )
                self.balance("Anything beyond that scope is shared without consent because: ")
            elif outcome == "unable_to_give":
                self.p(
                    "<b>Consent could not be given.</b> "
                    + _t(f"I asked {subject_text} for consent but they were unable to give it.")
                )
                self.balance("I have shared without consent because: ")

        explained = self._list("explained_to_person")
        if explained and self.a.get("consent_sought"):
            self.p(
                escape("When consent was sought I explained: ")
                + _t("; ".join(self._label("explained_to_person", e) for e in explained))
                + "."
            )

        legal_rows: list[tuple[str, str]] = []
        art6 = self._str("lawful_basis_art6")
        if art6:
            legal_rows.append(("UK GDPR lawful basis", escape(ART6.get(art6, art6))))
        art9 = self._str("condition_art9")
        if art9:
            text = ART9.get(art9, art9)
            reason = PARA18_REASON.get(self._str("para18_reason"), "")
            if art9 == "sch1_para18_safeguarding" and reason:
                text += f"; without consent because {reason}"
            legal_rows.append(("Special category condition", escape(text)))
        aim = self._str("article8_aim")
        if aim:
            legal_rows.append(
                ("Human Rights Act, Article 8(2) aim", escape(ARTICLE8_AIM.get(aim, aim)))
            )
        if self.a.get("minimum_necessary_confirmed"):
            legal_rows.append(
                ("Minimum necessary", "Only the information needed has been included.")
            )
        if decision == "share_limited":
            legal_rows.append(
                (
                    "Limited sharing",
                    "Limited information is shared so that we can decide together whether "
                    "there is a risk that justifies sharing more.",
                )
            )
        if legal_rows:
            self.fields(legal_rows)

        left_out = [ITEM_NAMES[i] for i in ITEM_NAMES if i not in self.included and self._holds(i)]
        if left_out:
            self.p(
                escape("Held by the practice but deliberately not included in this letter: ")
                + escape("; ".join(left_out))
                + "."
            )

    def _holds(self, item: str) -> bool:
        """Whether the record holds information of that kind (so leaving it out is worth saying)."""
        keys = {
            "child_identity": ["child_given_name", "nhs_number", "date_of_birth", "address"],
            "parent_identities": ["parents_carers"],
            "risk_person_identity": ["person_posing_risk"],
            "reasons": ["concern_narrative"],
            "health_information": list(SH_INDICATORS),
            "parental_factors": [],
            "household": ["household_members"],
            "school": ["school"],
        }[item]
        if item == "parental_factors":
            return any(f in PARENTAL_FACTOR_FLAGS for f in self._list("additional_flags"))
        return any(self.a.get(k) for k in keys)

    def balance(self, lead: str) -> None:
        """The public-interest balance (conclusion_statement) and harm if not shared."""
        conclusion = self._str("conclusion_statement")
        if conclusion:
            self.p("<b>" + escape(lead) + "</b>" + _t(conclusion))
        harm = self._str("harm_if_not_shared")
        if harm:
            self.p(escape("Risk of harm to the child if this is not shared: ") + _t(harm))

    def informing(self) -> None:
        self.h2("Informing the family")
        informed = self._str("family_informed")
        who = self._str("informed_who")
        how = self._str("informed_how")
        detail = ", ".join(x for x in (who, how) if x)
        reason = self._str("not_informed_reason")
        reason_text = self._label("not_informed_reason", reason) if reason else ""
        if reason == "other" and self._str("not_informed_detail"):
            reason_text = self._str("not_informed_detail")
        if informed == "before":
            self.p(
                _t(
                    "The family was told about this referral before it was made"
                    + (f" ({detail})." if detail else ".")
                )
            )
        elif informed == "after":
            self.p(
                _t(
                    "The family was told about this referral after it was made"
                    + (f" ({detail})." if detail else ".")
                )
            )
        elif informed == "planned":
            self.p(
                "<b>The family has not yet been told about this referral.</b> "
                + _t(
                    "The practice plans to tell them. Reason it has not happened yet: "
                    + (reason_text or "not recorded")
                    + "."
                )
            )
        elif informed == "no":
            self.p(
                "<b>The family does not know about this referral.</b> "
                + _t("Reason: " + (reason_text or "not recorded") + ".")
                + " Please take this into account before contacting them."
            )
        else:
            self.p("Whether the family knows about this referral was not recorded.")
        withheld = _blocks(self.a.get("withheld_information"))
        if withheld:
            self.story.append(
                Paragraph(
                    "Information that must not be disclosed to the family", self.st.opinion_label
                )
            )
            for block in withheld:
                self.p(block, self.st.callout)

    def request(self) -> None:
        self.h2("What is requested")
        threshold = self._str("threshold_view")
        decision = self._str("decision")
        asks: list[str] = []
        if self.a.get("immediate_danger"):
            asks.append("Urgent action to make the child safe, as discussed by telephone.")
        if decision == "share_limited":
            asks.append(
                "Any information you hold about this child and family, so that we can decide "
                "together whether there is a risk that justifies sharing more."
            )
        elif decision == "refer_police":
            asks.append(
                "Consideration by the police and a joint decision with children's social care."
            )
        if threshold == "significant_harm":
            asks.append(
                "Consideration of enquiries under section 47 of the Children Act 1989: I have "
                "reasonable cause to suspect the child is suffering, or is likely to suffer, "
                "significant harm. I am willing to take part in a strategy discussion."
            )
        elif threshold == "child_in_need":
            asks.append(
                "An assessment of the child's needs under section 17 of the Children Act 1989 (child in need)."
            )
        elif threshold == "early_help" or decision == "early_help_referral":
            asks.append("Consideration for early help services, with the family's agreement.")
        elif threshold in ("below_threshold", "unsure"):
            asks.append(
                "Your advice on whether this concern meets the threshold for your involvement."
            )
        if not asks:
            asks.append("An assessment of the child's needs and safety.")
        self.bullets([escape(a) for a in asks])
        # the closing lines travel with the signature block so it never stands alone
        contact = self.inp.referrer.contact or self.inp.practice.phone
        self.closing = [
            Paragraph("<b>" + escape(ACK_REQUEST) + "</b>", self.st.body),
            Paragraph(
                _t(
                    f"If you need more information, please contact {self.inp.referrer.full_name}"
                    + (f" on {contact}" if contact else "")
                    + "."
                ),
                self.st.body,
            ),
        ]

    def signature(self) -> None:
        r = self.inp.referrer
        signed = _local(self.inp.signed_at)
        completed = _local(self.inp.completed_at)
        lines: list[Flowable] = [
            *self.closing,
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
        self.story.append(KeepTogether(lines))


# --------------------------------------------------------------------------- entry point


def build_letter(inp: LetterInput, *, draft_mark: str | None = None) -> bytes:
    """Build the (unsigned) referral letter PDF; `draft_mark` (for a preview before signing)
    is written across every page."""
    _register_fonts()
    story = _Builder(inp).build()
    buf = BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=MARGIN_X - FRAME_PAD,
        rightMargin=MARGIN_X - FRAME_PAD,
        topMargin=19 * mm,
        bottomMargin=22 * mm,
        title="Safeguarding referral",
        subject=f"Safeguarding referral {short_reference(inp.record_id)}",
        author=inp.referrer.full_name,
        creator="gpshare",
        producer="gpshare",
        initialFontName=FONT,
        initialFontSize=9.6,
        invariant=True,
    )
    doc.build(story, canvasmaker=_make_canvas_class(inp.record_id, draft_mark))
    return buf.getvalue()
