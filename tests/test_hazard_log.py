"""The clinical hazard log (docs/clinical-safety) can never point at a missing test, every rule
R1–R11 is used by a control, a row citing a rule names that rule's tests, and every risk is the
one the README's matrix gives."""

from __future__ import annotations

import ast
import fnmatch
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "clinical-safety"
TESTS = ROOT / "tests"
COLUMNS = (
    "ID",
    "Hazard",
    "Cause",
    "Effect",
    "Initial risk",
    "Controls",
    "Verified by",
    "Residual risk",
    "Status",
)
SEVERITIES = ("Minor", "Significant", "Considerable", "Major", "Catastrophic")
LIKELIHOODS = ("Very high", "High", "Medium", "Low", "Very low")
TEST_REF = re.compile(r"tests/([\w/]+\.py)::(test_[\w*]+)")
RISK = re.compile(r"^(\w+) × ([\w ]+?) → (\d)$")
RULE = re.compile(r"\bR(\d{1,2})\b")


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


@cache
def rows() -> list[dict[str, str]]:
    """Every hazard and open-question row of the log, by column name."""
    found = []
    for line in (DOCS / "hazard-log.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("| ID |"):
            assert tuple(cells(line)) == COLUMNS
        elif re.match(r"\| (H|OQ)-\d\d \|", line):
            values = cells(line)
            assert len(values) == len(COLUMNS), f"{values[0]} has {len(values)} cells"
            found.append(dict(zip(COLUMNS, values, strict=True)))
    return found


@cache
def matrix() -> dict[tuple[str, str], int]:
    """(severity, likelihood) -> risk, read from the README's risk matrix."""
    table: dict[tuple[str, str], int] = {}
    for line in (DOCS / "README.md").read_text(encoding="utf-8").splitlines():
        values = cells(line)
        if values and values[0] in LIKELIHOODS and len(values) == 6:
            for severity, risk in zip(SEVERITIES, values[1:], strict=True):
                table[(severity, values[0])] = int(risk)
    assert len(table) == 25, "the README's risk matrix must be 5 × 5"
    return table


@cache
def defined_tests(relative: str) -> frozenset[str]:
    """Names of the test functions (module level or in classes) of one test file."""
    if not (TESTS / relative).is_file():
        return frozenset()
    tree = ast.parse((TESTS / relative).read_text(encoding="utf-8"))
    return frozenset(
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    )


def test_log_has_hazards_with_unique_ids():
    ids = [r["ID"] for r in rows()]
    assert len(ids) >= 30
    assert len(ids) == len(set(ids))


def test_every_referenced_test_exists():
    text = (DOCS / "hazard-log.md").read_text(encoding="utf-8")
    refs = set(TEST_REF.findall(text))
    assert refs, "the log names no tests"
    missing = sorted(
        f"tests/{relative}::{name}"
        for relative, name in refs
        if not (TESTS / relative).is_file() or not fnmatch.filter(defined_tests(relative), name)
    )
    assert not missing, "the hazard log names tests that do not exist: " + ", ".join(missing)


def test_every_rule_is_used_by_a_control():
    used = {int(n) for r in rows() for n in RULE.findall(r["Controls"])}
    assert set(range(1, 12)) <= used, f"rules not in any control: {set(range(1, 12)) - used}"


@pytest.mark.parametrize("row", rows(), ids=lambda r: r["ID"])
def test_a_row_citing_a_rule_names_that_rules_tests(row):
    for number in sorted({int(n) for n in RULE.findall(row["Controls"])}):
        prefix = f"tests/test_form_v2_rules.py::test_r{number}_"
        assert prefix in row["Verified by"], f"{row['ID']} cites R{number} but not {prefix}*"


@pytest.mark.parametrize("row", rows(), ids=lambda r: r["ID"])
def test_risks_follow_the_matrix(row):
    for column in ("Initial risk", "Residual risk"):
        found = RISK.match(row[column])
        assert found, f"{row['ID']} {column}: write it as 'Severity × Likelihood → risk'"
        severity, likelihood, risk = found[1], found[2], int(found[3])
        assert severity in SEVERITIES and likelihood in LIKELIHOODS, row[column]
        assert matrix()[(severity, likelihood)] == risk, f"{row['ID']} {column}: {row[column]}"


@pytest.mark.parametrize("row", rows(), ids=lambda r: r["ID"])
def test_a_row_without_a_proving_test_is_open(row):
    if not TEST_REF.search(row["Verified by"]):
        assert row["Status"].startswith("Open"), f"{row['ID']} has no test but is not Open"
    for column in ("Hazard", "Cause", "Effect", "Controls"):
        assert row[column], f"{row['ID']} has no {column}"


def test_readme_says_how_to_update():
    text = (DOCS / "README.md").read_text(encoding="utf-8")
    assert "Every rule change updates this log and names the test" in text
    for heading in ("## Scope", "## Method", "### Risk matrix", "## Roles", "## How to update"):
        assert heading in text
