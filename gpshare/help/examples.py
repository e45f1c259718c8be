"""Help › Worked examples, built from the fictional scenarios shipped in help/scenarios/.

The scenario files are copies of the test fixtures (tests/fixtures/scenarios/v2; a test keeps
them equal). Each example shows the story, the answers step by step with the form's own
labels, and what gpshare's navigator computes from them now: the outcome, the prompts and the
codes to add to the GP record, or, for bad input, the messages that block completion.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from gpshare.forms import Field, Form, load_form_by_id
from gpshare.letter_template import phrase, template_for_form
from gpshare.navigator import (
    CONSENT_BASIS_LABELS,
    PATHWAY_LABELS,
    Context,
    Evaluation,
    evaluate,
    format_day,
    is_empty,
)

SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"

INTRO = (
    "These examples are built from the fictional cases gpshare's own tests run. Every name, "
    "address and NHS number is invented. The outcome, prompts and codes below are worked out "
    "now, by the same rules the assessment uses, from the answers shown (with the practice "
    "settings left empty). Try them in the demo vault (`gpshare demo`)."
)

SEVERITY = {"info": "For information", "warning": "Warning", "critical": "Critical"}


@dataclass(frozen=True)
class WorkedExample:
    """One scenario file, its form and what the navigator makes of its answers."""

    key: str
    title: str
    story: str
    answers: Mapping[str, Any]
    expect: Mapping[str, Any]
    form: Form
    evaluation: Evaluation


def scenario_files() -> list[Path]:
    """The shipped scenario files, in their numbered order."""
    return sorted(SCENARIOS_DIR.glob("*.json"))


def load_examples(today: date | None = None) -> list[WorkedExample]:
    """Every shipped scenario, evaluated as of `today` (default: today)."""
    context = Context(today=today or date.today())
    examples = []
    for path in scenario_files():
        case = json.loads(path.read_text(encoding="utf-8"))
        form = load_form_by_id(case["form"], case.get("form_version", 1))
        examples.append(
            WorkedExample(
                key=path.stem,
                title=case["title"],
                story=case["story"],
                answers=case["answers"],
                expect=case["expect"],
                form=form,
                evaluation=evaluate(form, case["answers"], context),
            )
        )
    return examples


def worked_examples_markdown(today: date | None = None) -> str:
    """The Help page: every worked example as Markdown."""
    parts = ["# Worked examples (fictional)", INTRO]
    for number, example in enumerate(load_examples(today), start=1):
        parts.append(example_markdown(example, number))
    return "\n\n".join(parts) + "\n"


def example_markdown(example: WorkedExample, number: int) -> str:
    """One example: story, answers by step, then the outcome or the blocking messages."""
    ev = example.evaluation
    completes = bool(example.expect.get("completes", True))
    heading = example.title if completes else f"{example.title} — what the app says"
    lines = [f"## {number}. {_md(heading)}", "", f"**Story.** {_md(example.story)}", ""]
    lines += ["### The answers, step by step", ""]
    for step in example.form.steps:
        if step.id not in ev.visible_steps:
            continue
        shown = [
            f
            for f in step.fields
            if f.id in ev.visible_fields and not is_empty(example.answers.get(f.id))
        ]
        if not shown:
            continue
        lines.append(f"**{_md(step.title)}**")
        lines.append("")
        lines += [f"- {_md(f.label)} — {_value(f, example.answers[f.id])}" for f in shown]
        lines.append("")
    if ev.ok:
        lines += _outcome_lines(example)
    else:
        lines += ["### What gpshare says", ""]
        lines.append("**Complete** is blocked until each of these is fixed:")
        lines.append("")
        for error in ev.errors:
            label = example.form.field(error.field).label
            where = example.form.step(error.step).title
            lines.append(f"- **{_md(label)}** ({_md(where)}): {_md(error.message)}")
        lines.append("")
    return "\n".join(lines).rstrip()


def _outcome_lines(example: WorkedExample) -> list[str]:
    outcome = example.evaluation.outcome
    lines = ["### What gpshare works out", ""]
    pathway = outcome.pathway or ""
    basis = outcome.consent_basis or ""
    lines.append(f"- **Pathway:** {_md(PATHWAY_LABELS.get(pathway, pathway))}")
    lines.append(f"- **Consent basis:** {_md(CONSENT_BASIS_LABELS.get(basis, basis))}")
    if outcome.letter_required:
        title = phrase(template_for_form(example.form), "titles", outcome.letter_title or "")
        named = f" — “{_md(title)}”" if title else ""
        lines.append(f"- **Letter:** a signed letter is required{named}")
    else:
        lines.append("- **Letter:** none; nothing is shared now")
    lines.append("")
    if example.evaluation.prompts:
        lines += ["**Prompts shown**", ""]
        lines += [
            f"- *{SEVERITY.get(p.severity, p.severity)}* — {_md(p.message)}"
            for p in example.evaluation.prompts
        ]
        lines.append("")
    if outcome.snomed_codes:
        lines += ["**Codes to add to the GP record** (the letter never prints them)", ""]
        lines += [
            f"- {c['code']} — {_md(c['term'])} (for {_md(_whom(c.get('for', 'child')))})"
            for c in outcome.snomed_codes
        ]
        lines.append("")
    return lines


def _whom(text: str) -> str:
    return "the child" if text == "child" else text


def _value(field: Field, value: Any) -> str:
    """An answer as a reader sees it: option labels, dates in words, Yes/No."""
    if field.type == "people" and isinstance(value, list):
        rows = []
        for row in value:
            if isinstance(row, Mapping):
                cells = [
                    f"{column.label}: {_cell(column.type, row[column.id])}"
                    for column in field.columns
                    if not is_empty(row.get(column.id))
                ]
                rows.append("; ".join(cells))
        return " | ".join(_md(r) for r in rows)
    if isinstance(value, list):
        return _md("; ".join(field.option_label(str(v)) for v in value))
    if field.options and isinstance(value, str):
        return _md(field.option_label(value))
    return _md(_cell(field.type, value))


def _cell(kind: str, value: Any) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if kind == "date" and isinstance(value, str):
        try:
            return format_day(date.fromisoformat(value))
        except ValueError:
            return value
    if kind == "datetime" and isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        return f"{format_day(moment.date())}, {moment:%H:%M}"
    return str(value)


def _md(text: str) -> str:
    """Typed text shown literally: Markdown's own characters are escaped."""
    out = str(text)
    for char in "\\`*_[]<>#":
        out = out.replace(char, "\\" + char)
    return out
