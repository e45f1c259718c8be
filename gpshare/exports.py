"""Exports for inspection and governance: records CSV and the audit report PDF (no Qt, no SQL)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from gpshare.codes import codes_text
from gpshare.followup import ReferralState
from gpshare.records import AuditEvent, Record

NARRATIVE_FIELDS = (
    "concern_narrative",
    "concern_opinion",
    "child_words",
    "reasons_not_sharing",
    "refusal_reasons",
    "conclusion_statement",
    "advice_summary",
    "support_offered",
)
CSV_COLUMNS = (
    "record_id",
    "status",
    "created",
    "completed",
    "child_name",
    "nhs_number",
    "date_of_birth",
    "clinician",
    "pathway",
    "consent_basis",
    "decision",
    "referral_status",
    "next_action",
    "next_action_due",
    "overdue",
    "snomed_codes",
)


def _safe(value: Any) -> str:
    """Text for a CSV cell; a leading = + - @ is quoted so spreadsheets never run it as a formula."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def records_csv(
    rows: Iterable[tuple[Record, ReferralState | None]], include_narratives: bool
) -> tuple[bytes, int]:
    """UTF-8 CSV (with BOM so Excel reads accents) of (record, referral state) rows, and the
    row count."""
    counted = [0]
    data = b"".join(records_csv_chunks(rows, include_narratives, counted))
    return data, counted[0]


def records_csv_chunks(
    rows: Iterable[tuple[Record, ReferralState | None]],
    include_narratives: bool,
    counted: list[int] | None = None,
    rows_per_chunk: int = 500,
) -> Iterator[bytes]:
    """The same CSV as `records_csv`, as UTF-8 pieces of `rows_per_chunk` rows, so an export
    of 100 000 records is streamed to the file; `counted[0]` holds the rows written so far."""
    out = io.StringIO()
    out.write("\ufeff")
    columns = list(CSV_COLUMNS) + (list(NARRATIVE_FIELDS) if include_narratives else [])
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for count, (r, state) in enumerate(rows, start=1):
        if counted is not None:
            counted[0] = count
        if not count % rows_per_chunk:
            yield out.getvalue().encode("utf-8")
            out.seek(0)
            out.truncate()
        row = [
            r.id,
            r.status,
            r.created,
            r.completed or "",
            r.child.display_name,
            r.child.nhs_number or "",
            r.child.date_of_birth or "",
            r.clinician,
            r.pathway or "",
            r.consent_basis or "",
            r.answers.get("decision") or "",
            state.status_label if state else "",
            (state.next_action or "") if state else "",
            (state.next_due.isoformat() if state and state.next_due else ""),
            ("yes" if state and state.overdue else ""),
            codes_text(r.outcome),  # for the clinical system; the letter never prints them
        ]
        if include_narratives:
            row += [r.answers.get(f) or "" for f in NARRATIVE_FIELDS]
        writer.writerow([_safe(v) for v in row])
    yield out.getvalue().encode("utf-8")


def audit_report_pdf(
    *,
    practice: str,
    generated_by: str,
    generated_at: datetime,
    chain_summary: str,
    chain_ok: bool,
    events: Sequence[AuditEvent],
    record_count: int,
    filters: str,
) -> bytes:
    """A printable audit report for inspection or the governance meeting (reportlab, embedded font)."""
    from xml.sax.saxutils import escape

    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    from gpshare.letter import FONT, FONT_BOLD, register_fonts

    register_fonts()
    base = ParagraphStyle("b", fontName=FONT, fontSize=9, leading=12)
    title = ParagraphStyle(
        "t",
        parent=base,
        fontName=FONT_BOLD,
        fontSize=16,
        leading=20,
        textColor=colors.HexColor("#1d3557"),
    )
    head = ParagraphStyle(
        "h",
        parent=base,
        fontName=FONT_BOLD,
        fontSize=11,
        leading=15,
        spaceBefore=8,
        textColor=colors.HexColor("#1d3557"),
    )
    cell = ParagraphStyle("c", parent=base, fontSize=7.5, leading=9.5)
    status_colour = "#1b7f3b" if chain_ok else "#b00020"
    story: list[Any] = [
        Paragraph(
            "OFFICIAL – SENSITIVE",
            ParagraphStyle(
                "m", parent=base, fontName=FONT_BOLD, textColor=colors.HexColor("#b00020")
            ),
        ),
        Paragraph(escape(f"Audit report — {practice}"), title),
        Paragraph(
            escape(
                f"Generated {generated_at:%d %B %Y %H:%M} UTC by {generated_by}. Filters: {filters or 'none'}."
            ),
            base,
        ),
        Spacer(1, 4 * mm),
        Paragraph("Audit chain", head),
        Paragraph(f'<font color="{status_colour}"><b>{escape(chain_summary)}</b></font>', base),
        Paragraph(escape(f"Records in the practice vault: {record_count}."), base),
        Paragraph("Events by action", head),
    ]
    counts = Counter(e.action for e in events)
    summary = [["Action", "Events"]] + [
        [a.replace("_", " "), str(n)] for a, n in sorted(counts.items())
    ]
    table = Table(summary, colWidths=[80 * mm, 25 * mm], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), FONT, 8),
                ("FONT", (0, 0), (-1, 0), FONT_BOLD, 8),
                ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.grey),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f2f4f7")]),
            ]
        )
    )
    story += [table, Paragraph("Events", head)]
    rows: list[list[Any]] = [["#", "Time (UTC)", "User", "Action", "Record", "Details"]]
    for e in events:
        details = ", ".join(f"{k}={v}" for k, v in sorted(e.details.items()))
        rows.append(
            [
                str(e.seq),
                e.at[:19].replace("T", " "),
                Paragraph(escape(e.actor), cell),
                e.action.replace("_", " "),
                e.record_id or "",
                Paragraph(escape(details[:300]), cell),
            ]
        )
    events_table = Table(
        rows, colWidths=[14 * mm, 34 * mm, 30 * mm, 40 * mm, 30 * mm, 120 * mm], repeatRows=1
    )
    events_table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), FONT, 7.5),
                ("FONT", (0, 0), (-1, 0), FONT_BOLD, 7.5),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.grey),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f2f4f7")]),
            ]
        )
    )
    story.append(events_table)

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 7.5)
        canvas.setFillColor(colors.HexColor("#5b6470"))
        canvas.drawString(12 * mm, 8 * mm, f"gpshare audit report — {practice}")
        canvas.drawRightString(landscape(A4)[0] - 12 * mm, 8 * mm, f"Page {doc.page}")
        canvas.restoreState()

    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=landscape(A4),
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=12 * mm,
        bottomMargin=14 * mm,
        title="gpshare audit report",
        author=practice,
        initialFontName=FONT,
        invariant=True,
    )
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()
