"""Seed a vault with N fictional records (default 100 000) for the list / search / memory benchmarks.

Writes through the store layer (repositories + audit.append) in big transactions, so the
records, the full-text index, the follow-ups and the audit hash chain look exactly as if
clinicians had made them — but without a KDF, a vault.json rewrite and an fsync per record.
The chain head is mirrored into vault.json at the end and the chain is verified.

Data: every name, address, NHS number (999 test range) and narrative is invented. Records
are spread over the last 5 years across 8 clinicians and the lead, over every pathway the
form produces (referral, monitor, early help, limited sharing, legal duty, emergency) and
every consent basis; 2 % are drafts; most referrals carry follow-up events.

    .venv/bin/python bench/seed.py [--n 100000] [--out DIR] [--reuse] [--plain] [--quick]

`--reuse` keeps an existing complete seed in DIR (default $GPSHARE_BENCH_DIR/seed-<N>);
`--plain` also writes an unencrypted copy (DIR-plain.db) for the plain-SQLite baselines.
Users and passwords: see bench/common.py (lead / lead-password-1, etc.); cheap KDF.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH_DIR,
    CLINICIAN_PASSWORD,
    PASSWORDS,
    QUICK_N,
    add_quick,
    create_bench_vault,
    scenario_answers,
)

from gpshare import navigator, services  # noqa: E402
from gpshare.forms import load_form_by_id  # noqa: E402
from gpshare.nhs_number import check_digit  # noqa: E402
from gpshare.records import ChildSummary, FollowUp, Record  # noqa: E402
from gpshare.services import DEFAULT_FORM_ID, SEARCH_FIELDS, open_session  # noqa: E402
from gpshare.store import audit  # noqa: E402
from gpshare.store.sqlcipher import db  # noqa: E402
from gpshare.store.sqlcipher import repositories as repo  # noqa: E402

SEED_VERSION = 6  # 6: stored referral states and records_search.updated (migration 0006)
BATCH = 5000  # records per transaction
EXTRA_CLINICIANS = [
    ("drpatel", "Dr Anil Patel", "7000002"),
    ("drowen", "Dr Siân Owen", "7000003"),
    ("drokoro", "Dr Grace Okoro", "7000004"),
    ("drwalsh", "Dr Niamh Walsh", "7000005"),
    ("drkhan", "Dr Imran Khan", "7000006"),
    ("drlewis", "Dr Rhys Lewis", "7000007"),
]
GIVEN = [
    "Ellie",
    "Jade",
    "Maisie",
    "Tomasz",
    "Leo",
    "Amira",
    "Noah",
    "Olivia",
    "Isla",
    "Freddie",
    "Aisha",
    "Kacper",
    "Ruby",
    "Harvey",
    "Zainab",
    "Oscar",
    "Lily",
    "Alfie",
    "Mia",
    "Theo",
    "Ava",
    "Reggie",
    "Poppy",
    "Ibrahim",
    "Hana",
    "Jayden",
    "Evie",
    "Mohammed",
    "Sienna",
    "Dylan",
    "Chloe",
    "Kai",
    "Grace",
    "Archie",
    "Esme",
    "Lucas",
    "Nia",
    "Finley",
    "Willow",
    "Yusuf",
    "Rosie",
    "Bartek",
]
FAMILY = [
    "Marsh",
    "Okafor",
    "Holt",
    "Wiśniewski",
    "Grant",
    "Hussain",
    "Clarke",
    "Nowak",
    "Bennett",
    "O'Brien",
    "Ahmed",
    "Taylor",
    "Kowalski",
    "Murphy",
    "Begum",
    "Wright",
    "Evans",
    "Ali",
    "Hughes",
    "Patel",
    "Robinson",
    "Walker",
    "Chaudhry",
    "Green",
    "Hall",
    "Lewis",
    "Young",
    "King",
    "Shaw",
    "Ward",
    "Fox",
    "Reid",
    "Doyle",
    "Kaur",
    "Lynch",
    "Moss",
    "Pearce",
    "Quinn",
    "Rees",
    "Stone",
]
STREETS = [
    "Canal Row",
    "Mill Road",
    "Quarry Close",
    "Orchard Lane",
    "Station Street",
    "Chapel Walk",
    "Park View",
    "Beck Side",
]
TOWNS = [
    "Leeds",
    "Bradford",
    "Wakefield",
    "Halifax",
    "Huddersfield",
    "Keighley",
    "Dewsbury",
    "Otley",
]
# Narrative vocabulary: clinical words a lead really searches for, plus filler.
CONCERN_BITS = [
    "bruising to both upper arms in a grip pattern",
    "a scald to the forearm not brought for treatment",
    "repeated missed immunisations and dental appointments",
    "disclosed that an adult at home hits her",
    "unexplained weight loss and poor hygiene",
    "a burn consistent with a cigarette",
    "older boyfriend collecting her from school",
    "self-harm with superficial cuts to the wrist",
    "domestic abuse reported by the mother",
    "parent intoxicated at the appointment",
    "frequent attendances at the emergency department",
    "head lice untreated for months and unwashed clothes",
    "fracture in a non-mobile infant",
    "talks about going missing overnight",
    "sexualised behaviour at nursery",
    "asthma inhaler not collected for three months",
]
OPINION_BITS = [
    "The explanation changed during the consultation.",
    "The account is consistent with the injury.",
    "The pattern is concerning for neglect.",
    "Mother engaged well and rebooked.",
    "Health visitor shares the concern.",
    "School nurse raised the same worry last term.",
]
LA_DECISIONS = ["nfa", "advice_signposting", "early_help", "s17_assessment", "s47_enquiry"]


def _templates() -> list[tuple[str, dict[str, Any], dict[str, Any], int]]:
    """(name, cleaned answers, outcome, weight) per variant, each validated by the navigator."""
    s1 = scenario_answers("01-bruised-toddler-parents-agree")
    s2 = scenario_answers("02-teen-sexual-health-refuses")
    s3 = scenario_answers("03-low-level-concern-monitor")
    not_sought = {k: v for k, v in s2.items() if k != "consent_outcome"}
    not_sought.update(consent_sought=False, not_sought_reasons=["asking_increases_risk"])
    variants = [
        ("referral, consent given", s1, 30),
        ("referral to police", {**s1, "decision": "refer_police", "recipient_type": "police"}, 6),
        ("referral, consent refused", s2, 12),
        ("referral, consent not sought", not_sought, 6),
        ("monitor", s3, 30),
        (
            "early help",
            {
                **s1,
                "threshold_view": "early_help",
                "decision": "early_help_referral",
                "recipient_type": "other",
            },
            6,
        ),
        (
            "limited sharing",
            {**s1, "threshold_view": "child_in_need", "decision": "share_limited"},
            4,
        ),
        (
            "legal duty",
            {**s1, "decision": "required_by_law", "legal_requirement": "court_order"},
            2,
        ),
        ("emergency", {**s1, "immediate_danger": True, "urgent_actions": ["police_999"]}, 4),
    ]
    form = load_form_by_id(DEFAULT_FORM_ID)
    context = navigator.Context(today=date.today())
    out = []
    for name, answers, weight in variants:
        evaluation = navigator.evaluate(form, answers, context)
        if evaluation.errors:
            problems = "; ".join(f"{e.field}: {e.message}" for e in evaluation.errors[:3])
            print(f"  (skipping variant '{name}': {problems})", file=sys.stderr)
            continue
        out.append((name, evaluation.cleaned, evaluation.outcome.to_dict(), weight))
    if not out:
        raise SystemExit("No scenario variant completes with the current form; cannot seed.")
    return out


def _nhs(rng: random.Random) -> str:
    while True:
        first = "999" + "".join(rng.choice("0123456789") for _ in range(6))
        digit = check_digit(first)
        if digit is not None:
            return first + str(digit)


_REF = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _record_id(rng: random.Random, used: set[str]) -> str:
    while True:
        chars = "".join(rng.choice(_REF) for _ in range(8))
        rid = f"SG-{chars[:4]}-{chars[4:]}"
        if rid not in used:
            used.add(rid)
            return rid


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _shift_date(text: Any, days: int) -> Any:
    try:
        return (date.fromisoformat(str(text)) + timedelta(days=days)).isoformat()
    except ValueError:
        return text


def _answers(base: dict[str, Any], rng: random.Random, when: datetime) -> dict[str, Any]:
    """A varied copy of a template's cleaned answers: identity, dates and narrative."""
    a = dict(base)
    given, family = rng.choice(GIVEN), rng.choice(FAMILY)
    a["child_given_name"], a["child_family_name"] = given, family
    a["nhs_number"] = _nhs(rng)
    if "date_of_birth" in a:
        a["date_of_birth"] = _shift_date(a["date_of_birth"], rng.randint(-200, 200))
    a["address"] = f"{rng.randint(1, 180)} {rng.choice(STREETS)}, {rng.choice(TOWNS)}"
    parent = f"{rng.choice(GIVEN)} {family}"
    if isinstance(a.get("parents_carers"), list):
        a["parents_carers"] = [
            {**row, "name": parent} if isinstance(row, dict) else row for row in a["parents_carers"]
        ]
    if "consent_given_by" in a:
        a["consent_given_by"] = f"{parent} (parent)"
    if "informed_who" in a:
        a["informed_who"] = f"{parent} (parent)"
    a["concern_narrative"] = (
        f"{given} was seen with {rng.choice(CONCERN_BITS)}. Also noted {rng.choice(CONCERN_BITS)}. "
        f"{rng.choice(OPINION_BITS)} Seen on {when.date().isoformat()} at the {rng.choice(TOWNS)} surgery."
    )
    if "concern_opinion" in a:
        a["concern_opinion"] = rng.choice(OPINION_BITS)
    day = when.date().isoformat()
    for key in ("advice_date",):
        if key in a:
            a[key] = day
    if "review_date" in a:
        a["review_date"] = (when.date() + timedelta(days=rng.choice([28, 42, 90, 180]))).isoformat()
    return a


def _search_text(answers: dict[str, Any]) -> str:
    return "\n".join(
        str(answers[k]) for k in SEARCH_FIELDS if isinstance(answers.get(k), str) and answers[k]
    )


def _followups(
    rng: random.Random, record_id: str, by: str, completed: datetime, now: datetime
) -> list[FollowUp]:
    """Sent → acknowledged → decision → closed, each with a probability, never in the future."""
    events: list[tuple[str, datetime, str | None]] = []
    if rng.random() < 0.85:
        sent = completed + timedelta(hours=rng.randint(1, 40))
        events.append(("sent", sent, None))
        if rng.random() < 0.75:
            ack = sent + timedelta(hours=rng.randint(2, 72))
            events.append(("acknowledged", ack, None))
            if rng.random() < 0.6:
                dec = ack + timedelta(days=rng.randint(1, 15))
                events.append(("decision", dec, rng.choice(LA_DECISIONS)))
                if rng.random() < 0.5:
                    events.append(("closed", dec + timedelta(days=rng.randint(1, 30)), None))
    out = []
    for event, at, decision in events:
        if at > now:
            break
        out.append(FollowUp(0, record_id, event, _iso(at), by, _iso(at), decision, None, {}))
    return out


def seed(folder: Path, n: int, rng_seed: int = 20261125) -> dict[str, Any]:
    """Create a vault in `folder` and fill it with n records; returns counts and timings."""
    started = time.perf_counter()
    rng = random.Random(rng_seed)
    create_bench_vault(folder)
    admin = open_session(folder, "admin", PASSWORDS["admin"])
    try:
        for username, name, gmc in EXTRA_CLINICIANS:
            admin.users.add_user(username, name, "clinician", CLINICIAN_PASSWORD, gmc)
    finally:
        admin.close()
    authors = ["lead", "drsmith", "drjones", *(u for u, _n, _g in EXTRA_CLINICIANS)]
    templates = _templates()
    weights = [t[3] for t in templates]
    form = load_form_by_id(DEFAULT_FORM_ID)

    now = datetime.now(UTC).replace(microsecond=0)
    span = int(timedelta(days=5 * 365).total_seconds())
    moments = sorted(now - timedelta(seconds=rng.randint(3600, span)) for _ in range(n))
    used: set[str] = set()
    counts = {"records": 0, "drafts": 0, "followups": 0, "events": 0}

    session = open_session(folder, "lead", PASSWORDS["lead"])
    try:
        conn = session.store.connection
        conn.execute("PRAGMA cache_size = -262144")  # 256 MiB page cache for this bulk load only
        key = audit.audit_key(session.db_key)
        prepared = time.perf_counter()
        for start in range(0, n, BATCH):
            with db.transaction(conn):
                for created in moments[start : start + BATCH]:
                    _one_record(
                        conn,
                        key,
                        rng,
                        form,
                        templates,
                        weights,
                        authors,
                        created,
                        now,
                        used,
                        counts,
                    )
            print(f"  {min(start + BATCH, n):>7} / {n} records", end="\r", flush=True)
        print()
        try:  # gpshare.services became a package in issue #12
            from gpshare.services._records import _store_referral_states as store_states
        except ImportError:
            store_states = getattr(services, "_store_referral_states", None)
        if store_states is not None:  # stored states (migration 0006)
            with session.store.maintenance() as tx:
                store_states(tx, tx.completed_records_light())
        seq, digest = audit.latest(conn)
        session.vault.set_audit_head(session.db_key, seq, digest)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        # No ANALYZE / PRAGMA optimize: the app never runs them, and planner statistics
        # would let queries use index skip-scans that a real vault does not get.
        written = time.perf_counter()
        report = session.audit_trail.verify_audit()
        verified = time.perf_counter()
    finally:
        session.close()
    return {
        "seed_version": SEED_VERSION,
        "schema_version": db.LATEST_SCHEMA_VERSION,
        "n": n,
        **counts,
        "audit_ok": report.ok,
        "audit_events": report.events,
        "setup_s": round(prepared - started, 2),
        "write_s": round(written - prepared, 2),
        "verify_s": round(verified - written, 2),
        "db_mb": round((folder / "records.db").stat().st_size / 1e6, 1),
        "created": now.isoformat(),
    }


def _one_record(
    conn, key, rng, form, templates, weights, authors, created, now, used, counts
) -> None:  # type: ignore[no-untyped-def]
    name, cleaned, outcome, _w = rng.choices(templates, weights)[0]
    author = rng.choice(authors)
    rid = _record_id(rng, used)
    answers = _answers(cleaned, rng, created)
    draft = rng.random() < 0.02
    if draft:  # a half-finished assessment: identity and concern only
        answers = {k: answers[k] for k in list(answers)[:12]}
    record = Record(
        rid,
        author,
        "draft",
        form.id,
        form.version,
        answers,
        form.steps[0].id,
        None,
        _iso(created),
        _iso(created),
        None,
        ChildSummary(
            answers.get("child_given_name", ""),
            answers.get("child_family_name", ""),
            answers.get("nhs_number"),
            answers.get("date_of_birth"),
        ),
    )
    nhs = answers.get("nhs_number")
    repo.insert_record(conn, record, nhs)
    audit.append(
        conn,
        key,
        at=created,
        actor=author,
        action="record_created",
        record_id=rid,
        details={"form": form.id, "version": form.version},
    )
    counts["events"] += 1
    if draft:
        audit.append(
            conn,
            key,
            at=created + timedelta(minutes=3),
            actor=author,
            action="draft_saved",
            record_id=rid,
            details={"autosave": False, "step": form.steps[0].id},
        )
        counts["events"] += 1
        counts["drafts"] += 1
    else:
        completed = created + timedelta(minutes=rng.randint(8, 55))
        repo.complete_record(conn, rid, answers, outcome, _iso(completed), nhs)
        if hasattr(repo, "put_links"):  # household-link keys, as Session.complete writes them
            from gpshare.chronology import address_key, carer_keys

            repo.put_links(conn, rid, carer_keys(answers), address_key(answers))
        audit.append(
            conn,
            key,
            at=completed,
            actor=author,
            action="record_completed",
            record_id=rid,
            details={
                "pathway": outcome.get("pathway"),
                "consent_basis": outcome.get("consent_basis"),
                "form_version": form.version,
            },
        )
        counts["events"] += 1
        if outcome.get("pathway") != "monitor":
            for fu in _followups(rng, rid, author, completed, now):
                repo.add_followup(conn, fu)
                audit.append(
                    conn,
                    key,
                    at=datetime.fromisoformat(fu.recorded_at),
                    actor=author,
                    action="followup_recorded",
                    record_id=rid,
                    details={"event": fu.event, "decision": fu.decision},
                )
                counts["followups"] += 1
                counts["events"] += 1
    # put_search_text goes through the integer map (migration 0005): a rowid delete, no scan.
    repo.put_search_text(conn, rid, _search_text(answers))
    counts["records"] += 1


def plain_copy(folder: Path, target: Path) -> Path:
    """An unencrypted copy of the vault's database (sqlcipher_export) for plain-SQLite baselines."""
    if target.exists():
        target.unlink()
    session = open_session(folder, "lead", PASSWORDS["lead"])
    try:
        conn = session.store.connection
        conn.execute(f"ATTACH DATABASE '{target}' AS plain KEY ''")
        conn.execute("SELECT sqlcipher_export('plain')")
        conn.execute("DETACH DATABASE plain")
    finally:
        session.close()
    return target


def fast_process() -> None:
    """Seeding only: turn off SQLCipher's memory zeroing/locking for this process.

    It halves the seed time, and the database written is byte-for-byte the same kind of file
    (the setting only affects how this process's heap is handled). Never call this in a
    process that measures anything: the app runs with `cipher_memory_security = ON`.
    """
    import sqlcipher3

    conn = sqlcipher3.connect(":memory:")
    conn.execute("PRAGMA cipher_log_level = NONE")
    conn.execute("PRAGMA cipher_memory_security = OFF")
    conn.close()
    db._process_configured = True  # noqa: SLF001 - keep configure_process from turning it on


def seed_dir(n: int) -> Path:
    return BENCH_DIR / f"seed-{n}"


def _paths(folder: Path) -> tuple[Path, Path]:
    """(seed info JSON, plain copy) beside a seeded vault folder."""
    return folder.with_name(folder.name + ".json"), folder.with_name(folder.name + "-plain.db")


def reusable(folder: Path, n: int) -> dict[str, Any] | None:
    """The info of a complete seed of n records in `folder`, or None."""
    info_path, _plain = _paths(folder)
    if info_path.exists() and (folder / "vault.json").exists():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        current = (n, SEED_VERSION, db.LATEST_SCHEMA_VERSION)
        if (info.get("n"), info.get("seed_version"), info.get("schema_version")) == current:
            return dict(info)
    return None


def seed_here(folder: Path, n: int, plain: bool) -> dict[str, Any]:
    """Seed in this process (call fast_process() first), replacing whatever was there."""
    info_path, plain_path = _paths(folder)
    for stale in (folder, info_path, plain_path):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    folder.parent.mkdir(parents=True, exist_ok=True)
    print(f"seeding {n} records into {folder} …", flush=True)
    info = seed(folder, n)
    if plain:
        t = time.perf_counter()
        plain_copy(folder, plain_path)
        info["plain_copy_s"] = round(time.perf_counter() - t, 2)
    info_path.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return info


def ensure_seeded(n: int, reuse: bool, plain: bool = False) -> tuple[Path, dict[str, Any], Path]:
    """(vault folder, seed info, plain copy path) — seeding in a child process when needed,
    so the calling benchmark keeps the app's process-wide SQLCipher settings."""
    folder = seed_dir(n)
    info_path, plain_path = _paths(folder)
    info = reusable(folder, n) if reuse else None
    if info is None or (plain and not plain_path.exists()):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--n", str(n)]
        if info is not None:
            cmd.append("--reuse")
        if plain:
            cmd.append("--plain")
        subprocess.run(cmd, check=True)
        info = reusable(folder, n)
        assert info is not None
    else:
        print(f"reusing seeded vault {folder} ({n} records)")
    return folder, info, plain_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n", type=int, default=100_000, help="records to generate (default 100000)"
    )
    parser.add_argument("--out", type=Path, help="vault folder (default $GPSHARE_BENCH_DIR/seed-N)")
    parser.add_argument("--reuse", action="store_true", help="keep an existing complete seed")
    parser.add_argument("--plain", action="store_true", help="also write an unencrypted copy")
    add_quick(parser)
    args = parser.parse_args()
    if args.quick:
        args.n = QUICK_N
    folder = args.out or seed_dir(args.n)
    t = time.perf_counter()
    fast_process()
    info = reusable(folder, args.n) if args.reuse else None
    if info is None:
        info = seed_here(folder, args.n, args.plain)
    else:
        print(f"reusing seeded vault {folder} ({args.n} records)")
        info_path, plain_path = _paths(folder)
        if args.plain and not plain_path.exists():
            plain_copy(folder, plain_path)
    print(json.dumps(info, indent=2))
    print(f"vault: {folder}  (users: lead / {PASSWORDS['lead']}, admin / {PASSWORDS['admin']})")
    print(f"total {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
