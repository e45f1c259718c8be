"""Bad input at the command line: a table of cases, each with its exit code, a message that
names what is wrong (and, with --json, the field), no traceback, and nothing stored unless
the message says so.

Answers files use the child identity fields and CLI arguments that every form version
shares, so the table holds when a newer form becomes the default.
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gpshare.cli import main
from gpshare.clock import FixedClock
from tests.conftest import PASSWORDS, SCENARIOS, VaultEnv, make_vault

BASE = json.loads((SCENARIOS / "03-low-level-concern-monitor.json").read_text())["answers"]


def answers_file(answers: Any, **top: Any) -> str:
    return json.dumps({"form": "england-child-safeguarding", "answers": answers, **top})


def with_answers(**changes: Any) -> str:
    return answers_file({**BASE, **changes})


# Files the cases refer to as {tmp}/NAME (text unless bytes).
FILES: dict[str, str | bytes] = {
    "empty.txt": "",
    "spaces.txt": "   \n\t\n",
    "long.txt": "x" * 6000,
    "huge.txt": "y" * 120_000,
    "control.txt": "Seen today.\x07\x1b[2J",
    "latin1.txt": "Caf\xe9 note".encode("latin-1"),
    "note-long.txt": "n" * 2500,
    "bad.json": '{"form": "england-child-safeguarding", "answers": {',
    "list.json": "[1, 2, 3]",
    "no-answers.json": '{"form": "england-child-safeguarding"}',
    "answers-list.json": '{"form": "england-child-safeguarding", "answers": [1]}',
    "no-form.json": json.dumps({"answers": {"child_given_name": "Ava"}}),
    "form-number.json": json.dumps({"form": 42, "answers": {"child_given_name": "Ava"}}),
    "form-unknown.json": json.dumps({"form": "no-such-form", "answers": {}}),
    "latin1.json": '{"form": "england-child-safeguarding", "answers": {"child_given_name": "Jos\xe9"}}'.encode(
        "latin-1"
    ),
    "unknown-field.json": answers_file({"child_given_name": "Ava", "favourite_colour": "blue"}),
    "name-number.json": answers_file({"child_given_name": 5}),
    "name-list.json": answers_file({"child_family_name": ["Lee"]}),
    "gender-token.json": answers_file({"gender": "robot"}),
    "danger-string.json": answers_file({"immediate_danger": "no"}),
    "categories-string.json": answers_file({"categories": "neglect"}),
    "categories-token.json": answers_file({"categories": ["neglect", "witchcraft"]}),
    "carers-string.json": answers_file({"parents_carers": "Ewa, mother"}),
    "name-too-long.json": answers_file({"child_given_name": "A" * 5000}),
    "nhs-checksum.json": with_answers(nhs_number="943 476 5918"),
    "nhs-short.json": with_answers(nhs_number="12345"),
    "nhs-letters.json": with_answers(nhs_number="ABC DEF GHIJ"),
    "dob-impossible.json": with_answers(date_of_birth="2020-02-30"),
    "dob-words.json": with_answers(date_of_birth="last Tuesday"),
    "dob-future.json": with_answers(date_of_birth="2099-01-01"),
    "given-name-empty.json": with_answers(child_given_name="   "),
    "not-a-pdf.pdf": "just some text",
    "garbage.p12": b"\x00\x01not a pkcs12 file",
    "garbage-ca.pem": "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
}


@dataclass(frozen=True)
class Case:
    id: str
    user: str | None  # whose password is in GPSHARE_PASSWORD (None: none)
    args: tuple[str, ...]  # {v} vault, {tmp} folder, {R} referral, {M} monitor, {D} draft
    code: int
    says: str  # must appear in stderr (case-insensitive)
    field: str | None = None  # must be a field in the --json errors
    json: bool = True  # add --json (commands that take it)
    stores: str = "nothing"  # or "draft": a draft is kept, and the message says so
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    stdin: str | None = None
    password: str | None = None


def c(id: str, user: str | None, args: str, code: int, says: str, **kw: Any) -> Case:
    return Case(id, user, tuple(args.split("|")), code, says, **kw)


S, A, L, J = "drsmith", "admin", "lead", "drjones"


def new_pw(password: str) -> dict[str, str]:
    return {"GPSHARE_NEW_PASSWORD": password}


def p12_pw(password: str) -> dict[str, str]:
    return {"GPSHARE_P12_PASSWORD": password}


U = "--vault|{v}|--user|"
# fmt: off
CASES = [
    # --- NHS numbers, dates and tokens as arguments
    c("child-nhs-short", S, f"records|{U}drsmith|--child|123", 2, "--child must be a valid NHS number", field="--child"),
    c("child-nhs-checksum", S, f"records|{U}drsmith|--child|9434765918", 2, "check digit", field="--child"),
    c("child-nhs-letters", S, f"records|{U}drsmith|--child|abcdefghij", 2, "--child", field="--child"),
    c("records-status-token", S, f"records|{U}drsmith|--status|archived", 2, "--status: invalid choice", json=False),
    c("at-words", S, f"followup|{{R}}|{U}drsmith|--event|sent|--at|yesterday", 2, "--at must be a date and time", field="--at"),
    c("at-impossible", S, f"followup|{{R}}|{U}drsmith|--event|sent|--at|2026-13-45T10:00", 2, "--at must be", field="--at"),
    c("at-future", S, f"followup|{{R}}|{U}drsmith|--event|sent|--at|2031-01-01T10:00", 2, "in the future", field="at"),
    c("at-before-completion", S, f"followup|{{R}}|{U}drsmith|--event|sent|--at|2020-01-01T10:00", 2, "before the assessment was completed", field="at"),
    c("event-token", S, f"followup|{{R}}|{U}drsmith|--event|phoned", 2, "--event: invalid choice", json=False),
    c("decision-token", S, f"followup|{{R}}|{U}drsmith|--event|decision|--decision|maybe", 2, "decision", field="event"),
    c("decision-missing", S, f"followup|{{R}}|{U}drsmith|--event|decision", 2, "decision", field="event"),
    c("detail-no-equals", S, f"followup|{{R}}|{U}drsmith|--event|sent|--detail|secure_email", 2, "--detail takes KEY=VALUE", field="--detail"),
    c("audit-limit-type", L, f"audit|log|{U}lead|--limit|ten", 2, "--limit: invalid int value", json=False),
    # --- over-long, empty and unreadable text
    c("addendum-too-long", S, f"addendum|{{R}}|{U}drsmith|--text-file|{{tmp}}/long.txt", 2, "5000 is the limit", field="text"),
    c("addendum-huge-file", S, f"addendum|{{R}}|{U}drsmith|--text-file|{{tmp}}/huge.txt", 2, "is over 100 kB", field="text"),
    c("addendum-empty", S, f"addendum|{{R}}|{U}drsmith|--text-file|{{tmp}}/empty.txt", 2, "addendum is empty", field="text"),
    c("addendum-spaces", S, f"addendum|{{R}}|{U}drsmith|--text-file|{{tmp}}/spaces.txt", 2, "addendum is empty", field="text"),
    c("addendum-control", S, f"addendum|{{R}}|{U}drsmith|--text-file|{{tmp}}/control.txt", 2, "control characters", field="text"),
    c("addendum-not-utf8", S, f"addendum|{{R}}|{U}drsmith|--text-file|{{tmp}}/latin1.txt", 2, "is not UTF-8 text", field="text"),
    c("addendum-missing-file", S, f"addendum|{{R}}|{U}drsmith|--text-file|{{tmp}}/nope.txt", 2, "Cannot read the --text-file", field="text"),
    c("addendum-stdin-empty", S, f"addendum|{{R}}|{U}drsmith|--password-stdin|--text-file|-", 2, "addendum is empty", field="text", stdin="{pw}\n"),
    c("addendum-no-text", S, f"addendum|{{R}}|{U}drsmith", 2, "one of the arguments --text-file --text is required", json=False),
    c("addendum-on-draft", S, f"addendum|{{D}}|{U}drsmith|--text-file|{{tmp}}/control.txt", 2, "still a draft", field="text"),
    c("note-too-long", S, f"followup|{{R}}|{U}drsmith|--event|sent|--note-file|{{tmp}}/note-long.txt", 2, "at most 2000 characters", field="note"),
    c("note-control", S, f"followup|{{R}}|{U}drsmith|--event|sent|--note-file|{{tmp}}/control.txt", 2, "plain text", field="note"),
    c("followup-on-draft", S, f"followup|{{D}}|{U}drsmith|--event|sent", 2, "still a draft", field="record"),
    # --- answers files: missing, bad JSON, wrong shapes, unknown fields, types, tokens, lengths
    c("answers-missing-file", S, f"assess|{U}drsmith|--answers|{{tmp}}/nope.json", 1, "Cannot read the answers file", field="answers"),
    c("answers-bad-json", S, f"assess|{U}drsmith|--answers|{{tmp}}/bad.json", 2, "is not valid JSON (line 1", field="answers"),
    c("answers-not-utf8", S, f"assess|{U}drsmith|--answers|{{tmp}}/latin1.json", 2, "is not UTF-8 text", field="answers"),
    c("answers-top-list", S, f"assess|{U}drsmith|--answers|{{tmp}}/list.json", 2, "must be a JSON object", field="answers"),
    c("answers-key-missing", S, f"assess|{U}drsmith|--answers|{{tmp}}/no-answers.json", 2, "must be a JSON object", field="answers"),
    c("answers-is-list", S, f"assess|{U}drsmith|--answers|{{tmp}}/answers-list.json", 2, "must be a JSON object", field="answers"),
    c("form-key-missing", S, f"assess|{U}drsmith|--answers|{{tmp}}/no-form.json", 2, 'has no "form"', field="form"),
    c("form-not-text", S, f"assess|{U}drsmith|--answers|{{tmp}}/form-number.json", 2, '"form" must be a form id', field="form"),
    c("form-unknown", S, f"assess|{U}drsmith|--answers|{{tmp}}/form-unknown.json", 2, "no-such-form", field="form"),
    c("unknown-field", S, f"assess|{U}drsmith|--answers|{{tmp}}/unknown-field.json", 2, "favourite_colour", field="favourite_colour"),
    c("name-as-number", S, f"assess|{U}drsmith|--answers|{{tmp}}/name-number.json", 2, "child_given_name", field="child_given_name"),
    c("name-as-list", S, f"assess|{U}drsmith|--answers|{{tmp}}/name-list.json", 2, "child_family_name", field="child_family_name"),
    c("gender-bad-token", S, f"assess|{U}drsmith|--answers|{{tmp}}/gender-token.json", 2, "gender", field="gender"),
    c("bool-as-text", S, f"assess|{U}drsmith|--answers|{{tmp}}/danger-string.json", 2, "immediate_danger", field="immediate_danger"),
    c("multi-as-text", S, f"assess|{U}drsmith|--answers|{{tmp}}/categories-string.json", 2, "categories", field="categories"),
    c("multi-bad-token", S, f"assess|{U}drsmith|--answers|{{tmp}}/categories-token.json", 2, "witchcraft", field="categories"),
    c("carers-as-text", S, f"assess|{U}drsmith|--answers|{{tmp}}/carers-string.json", 2, "parents_carers", field="parents_carers"),
    c("name-over-long", S, f"assess|{U}drsmith|--answers|{{tmp}}/name-too-long.json|--complete", 2, "the limit is 100", field="child_given_name", stores="draft"),
    c("draft-keeps-errors", S, f"assess|{U}drsmith|--answers|{{tmp}}/name-too-long.json", 0, "the limit is 100", field="child_given_name", stores="draft"),
    # --- child identity values (caught when completing; the draft is kept and said so)
    c("nhs-checksum", S, f"assess|{U}drsmith|--answers|{{tmp}}/nhs-checksum.json|--complete", 2, "kept as draft", field="nhs_number", stores="draft"),
    c("nhs-short", S, f"assess|{U}drsmith|--answers|{{tmp}}/nhs-short.json|--complete", 2, "kept as draft", field="nhs_number", stores="draft"),
    c("nhs-letters", S, f"assess|{U}drsmith|--answers|{{tmp}}/nhs-letters.json|--complete", 2, "kept as draft", field="nhs_number", stores="draft"),
    c("dob-impossible", S, f"assess|{U}drsmith|--answers|{{tmp}}/dob-impossible.json|--complete", 2, "kept as draft", field="date_of_birth", stores="draft"),
    c("dob-words", S, f"assess|{U}drsmith|--answers|{{tmp}}/dob-words.json|--complete", 2, "kept as draft", field="date_of_birth", stores="draft"),
    c("dob-future", S, f"assess|{U}drsmith|--answers|{{tmp}}/dob-future.json|--complete", 2, "kept as draft", field="date_of_birth", stores="draft"),
    c("given-name-blank", S, f"assess|{U}drsmith|--answers|{{tmp}}/given-name-empty.json|--complete", 2, "kept as draft", field="child_given_name", stores="draft"),
    # --- settings values
    c("setting-lock-zero", A, f"settings|{U}admin|auto_lock_minutes=0", 2, "whole number from 1 to 60", field="auto_lock_minutes"),
    c("setting-lock-words", A, f"settings|{U}admin|auto_lock_minutes=five", 2, "whole number from 1 to 60", field="auto_lock_minutes"),
    c("setting-keep-big", A, f"settings|{U}admin|backup_keep=1000", 2, "from 1 to 100", field="backup_keep"),
    c("setting-hours-negative", A, f"settings|{U}admin|written_confirmation_hours=-4", 2, "from 1 to 168", field="written_confirmation_hours"),
    c("setting-ods", A, f"settings|{U}admin|practice_ods_code=B8-2005!", 2, "ODS code is 3–6 letters", field="practice_ods_code"),
    c("setting-email", A, f"settings|{U}admin|practice_secure_email=safeguarding at nhs", 2, "Secure email must look like", field="practice_secure_email"),
    c("setting-closure-date", A, f"settings|{U}admin|local_closure_days=2026-12-29,31/02/2026", 2, "not understood: 31/02/2026", field="local_closure_days"),
    c("setting-unknown", A, f"settings|{U}admin|colour_scheme=blue", 2, "'colour_scheme' is not a setting", field="colour_scheme"),
    c("setting-no-equals", A, f"settings|{U}admin|practice_name", 2, "KEY=VALUE", field="settings"),
    c("setting-too-long", A, f"settings|{U}admin|practice_address={'a' * 600}", 2, "too long (500 characters at most)", field="practice_address"),
    # --- users and passwords
    c("user-bad-username", A, f"user|add|{U}admin|Bad Name!|--role|clinician|--name|Bad", 2, "Username must be 2–32 characters", field="username", env=new_pw("fresh orchard lantern")),
    c("user-duplicate", A, f"user|add|{U}admin|drsmith|--role|clinician|--name|Dup", 2, "already a user called 'drsmith'", field="username", env=new_pw("fresh orchard lantern")),
    c("user-gmc", A, f"user|add|{U}admin|drnew|--role|clinician|--name|Dr New|--gmc|12AB", 2, "exactly 7 digits", field="gmc", env=new_pw("fresh orchard lantern")),
    c("user-name-long", A, f"user|add|{U}admin|drnew|--role|clinician|--name|{'N' * 101}", 2, "full name (up to 100", field="name", env=new_pw("fresh orchard lantern")),
    c("user-role-token", A, f"user|add|{U}admin|drnew|--role|boss|--name|Dr New", 2, "--role: invalid choice", json=False),
    c("password-digits", A, f"user|add|{U}admin|drnew|--role|clinician|--name|Dr New", 2, "too easy to guess", field="password", env=new_pw("1234567890")),
    c("password-common", A, f"user|add|{U}admin|drnew|--role|clinician|--name|Dr New", 2, "too easy to guess", field="password", env=new_pw("password12")),
    c("password-short", A, f"user|add|{U}admin|drnew|--role|clinician|--name|Dr New", 2, "at least 10 characters", field="password", env=new_pw("short")),
    c("password-own-name", A, f"user|add|{U}admin|drnew|--role|clinician|--name|Dr New", 2, "too easy to guess", field="password", env=new_pw("drnew12345")),
    c("passwd-weak-change", S, f"user|passwd|{U}drsmith", 2, "too easy to guess", field="new_password", env=new_pw("qwertyuiop")),
    c("passwd-reset-unknown", A, f"user|passwd|{U}admin|nobody", 1, "No user called 'nobody'"),
    c("disable-self", A, f"user|disable|{U}admin|admin", 2, "cannot disable your own account", field="username"),
    c("disable-unknown", A, f"user|disable|{U}admin|nobody", 1, "No user called 'nobody'"),
    c("p12-missing-file", A, f"user|import-p12|{U}admin|drsmith|--file|{{tmp}}/nope.p12", 1, "Cannot read", env=p12_pw("x")),
    c("p12-garbage", A, f"user|import-p12|{U}admin|drsmith|--file|{{tmp}}/garbage.p12", 2, "", field="pkcs12", env=p12_pw("x")),
    c("unknown-user", None, f"records|{U}nobody", 1, "no user called 'nobody'", password="whatever-password"),
    c("no-password", None, f"records|{U}drsmith", 1, "No password given"),
    c("password-stdin-empty", None, f"records|{U}drsmith|--password-stdin", 1, "standard input is empty", stdin=""),
    # --- wrong roles and other people's records
    c("admin-reads-record", A, f"show|{{R}}|{U}admin", 1, "Not permitted for your role"),
    c("admin-lists-records", A, f"records|{U}admin|--child|9434765919", 1, "Not permitted for your role"),
    c("admin-assesses", A, f"assess|{U}admin|--answers|{{tmp}}/nhs-checksum.json", 1, "Not permitted for your role"),
    c("other-clinician-reads", J, f"show|{{R}}|{U}drjones", 1, "only open your own records"),
    c("other-clinician-addendum", J, f"addendum|{{R}}|{U}drjones|--text-file|{{tmp}}/control.txt", 1, "only open your own records"),
    c("clinician-closes", S, f"followup|{{R}}|{U}drsmith|--event|closed", 1, "only the practice safeguarding lead"),
    c("clinician-settings", S, f"settings|{U}drsmith|auto_lock_minutes=10", 1, "Not permitted for your role"),
    c("lead-adds-user", L, f"user|add|{U}lead|drnew|--role|admin|--name|Eve", 1, "Not permitted for your role", env=new_pw("fresh orchard lantern")),
    c("clinician-exports", S, f"export|{U}drsmith|--what|records|--format|csv|--out|{{tmp}}/out.csv", 1, "Not permitted for your role"),
    c("other-signs-letter", J, f"letter|{{R}}|{U}drjones|--out|{{tmp}}/out.pdf", 1, "only open your own records"),
    # --- records, letters and files that are not there or not right
    c("record-unknown", S, f"show|SG-0000-0000|{U}drsmith", 1, "No record called SG-0000-0000"),
    c("letter-of-draft", S, f"letter|{{D}}|{U}drsmith|--out|{{tmp}}/out.pdf", 2, "still a draft"),
    c("letter-of-monitor", S, f"letter|{{M}}|{U}drsmith|--out|{{tmp}}/out.pdf", 2, "no referral letter"),
    c("export-wrong-format", L, f"export|{U}lead|--what|records|--format|pdf|--out|{{tmp}}/out.pdf", 2, "Records export as CSV"),
    c("verify-missing-file", None, "verify-letter|{tmp}/nope.pdf|--ca|{tmp}/ca.pem", 1, "Cannot read", json=False),
    c("verify-no-trust", None, "verify-letter|{tmp}/letter.pdf", 2, "Say whose signatures to trust", json=False),
    c("verify-garbage-ca", None, "verify-letter|{tmp}/letter.pdf|--ca|{tmp}/garbage-ca.pem", 2, "is not a certificate", field="ca"),
    c("verify-ca-missing", None, "verify-letter|{tmp}/letter.pdf|--ca|{tmp}/nope.pem", 1, "Cannot read", json=False),
    # Last on purpose: a failed login starts a short wait for that user on the real clock
    # (vault backoff), which would refuse the next drsmith case run within the second.
    c("wrong-password", S, f"records|{U}drsmith", 1, "not right", password="not-the-password"),
]
# fmt: on


@dataclass
class World:
    env: VaultEnv
    tmp: Path
    ids: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    tmp = tmp_path_factory.mktemp("bad-inputs")
    env = make_vault(tmp / "vault", FixedClock(datetime(2026, 11, 25, 10, 0, tzinfo=UTC)))
    s = env.session("drsmith")
    ids = {}
    for key, name in (
        ("R", "01-bruised-toddler-parents-agree"),
        ("M", "03-low-level-concern-monitor"),
    ):
        answers = json.loads((SCENARIOS / f"{name}.json").read_text())["answers"]
        ids[key] = s.assessments.complete(s.assessments.start_assessment(answers=answers).id)[0].id
    ids["D"] = s.assessments.start_assessment(answers={"child_given_name": "Leo"}).id
    (tmp / "letter.pdf").write_bytes(s.letters.generate_letter(ids["R"], PASSWORDS["drsmith"]).pdf)
    (tmp / "ca.pem").write_bytes(s.practice.practice_ca_pem())
    s.close()
    for name, content in FILES.items():
        path = tmp / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return World(env, tmp, ids)


def stored_state(env: VaultEnv) -> dict[str, Any]:
    """Everything a bad command could have changed (the audit log aside, which records attempts)."""
    lead = env.session("lead")
    try:
        records = lead.assessments.list_records()
        state: dict[str, Any] = {
            "records": sorted((r.id, r.status, r.updated) for r in records),
            "per_record": {
                r.id: (
                    len(lead.assessments.addenda(r.id)),
                    len(lead.referrals.followups(r.id)),
                    len(lead.referrals.reviews(r.id)),
                    len(lead.letters.list_letters(r.id)),
                )
                for r in records
                if r.status == "completed"
            },
        }
    finally:
        lead.close()
    admin = env.session("admin")
    try:
        state["users"] = sorted(
            (u.username, u.active, u.must_change_password) for u in admin.users.list_users()
        )
        state["settings"] = admin.practice.settings()
        state["backups"] = len(admin.backups.list_backups())
    finally:
        admin.close()
    return state


def test_the_table_is_big_enough():
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, world: World, capsys, monkeypatch):
    def fill(text: str) -> str:
        return text.format(v=world.env.folder, tmp=world.tmp, **world.ids)

    args = [fill(a) for a in case.args] + (["--json"] if case.json else [])
    monkeypatch.delenv("GPSHARE_PASSWORD", raising=False)
    monkeypatch.delenv("GPSHARE_NEW_PASSWORD", raising=False)
    if case.user or case.password:
        pw = case.password or PASSWORDS[case.user or ""]
        if case.stdin is None:
            monkeypatch.setenv("GPSHARE_PASSWORD", pw)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    stdin = (case.stdin or "").replace("{pw}", PASSWORDS.get(case.user or "", ""))
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    monkeypatch.setattr("gpshare.cli._stdin_lines", None)
    before = stored_state(world.env)
    capsys.readouterr()

    code = main(args)
    out, err = capsys.readouterr()

    assert code == case.code, err
    assert "Traceback" not in err and "unexpected problem" not in err
    said = err
    if case.json and out.strip():
        # With --json the messages are (also) in the JSON on standard output.
        result = json.loads(out)
        said += "\n".join(
            [str(result.get("message", "")), str(result.get("record_id", ""))]
            + [e["message"] for e in result["errors"]]
        )
        assert all(e["message"] for e in result["errors"])
        if case.field is not None:
            assert case.field in {e["field"] for e in result["errors"]}, result
    else:
        assert case.field is None, "the case expects --json field errors"
    assert said.strip(), "a failure must say why"
    assert case.says.lower() in said.lower()
    after = stored_state(world.env)
    if case.stores == "draft":
        new = sorted(set(after["records"]) - set(before["records"]))
        assert len(new) == 1 and new[0][1] == "draft"
        assert new[0][0] in said  # the message names the draft it kept
        after["records"] = before["records"]
    assert after == before
