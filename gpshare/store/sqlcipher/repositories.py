"""All SQL for users, settings, records, addenda, letters, follow-ups, reviews and the CA."""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from gpshare.filters import AuditFilter as AuditFilter
from gpshare.filters import RecordFilter as RecordFilter
from gpshare.followup import STATE_ANSWERS
from gpshare.records import (
    Addendum,
    AuditEvent,
    ChildSummary,
    FollowUp,
    LetterMeta,
    Record,
    Review,
    User,
)
from gpshare.store.crypto import KdfParams
from gpshare.store.port import (
    BREAKGLASS_EVENT,
    BreakglassState,
    DirectoryRow,
    LeadRotation,
    ObjectWrap,
    RememberedLogin,
    RoleKeyWrap,
    StoredBundle,
)
from gpshare.store.port import DashboardRows as DashboardRows
from gpshare.store.port import StoredState as StoredState
from gpshare.store.port import WrappedKey as WrappedKey
from gpshare.store.sqlcipher.db import Connection

if TYPE_CHECKING:
    from gpshare.store.keys.directory import RotationStatement, SignedEntry

# ----- users --------------------------------------------------------------------------

_USER_COLUMNS = "username, full_name, role, gmc_number, active, must_change_password, created"


def _user(row: Sequence[Any]) -> User:
    return User(
        str(row[0]), str(row[1]), str(row[2]), row[3], bool(row[4]), bool(row[5]), str(row[6])
    )


def insert_user(conn: Connection, user: User) -> None:
    conn.execute(
        f"INSERT INTO users ({_USER_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
        (
            user.username,
            user.full_name,
            user.role,
            user.gmc_number,
            int(user.active),
            int(user.must_change_password),
            user.created,
        ),
    )


def get_user(conn: Connection, username: str) -> User | None:
    row = conn.execute(
        f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?", (username,)
    ).fetchone()
    return _user(row) if row else None


def list_users(conn: Connection) -> list[User]:
    return [
        _user(r)
        for r in conn.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY role, full_name")
    ]


def set_user_active(conn: Connection, username: str, active: bool) -> None:
    conn.execute("UPDATE users SET active = ? WHERE username = ?", (int(active), username))


def set_must_change_password(conn: Connection, username: str, value: bool) -> None:
    conn.execute(
        "UPDATE users SET must_change_password = ? WHERE username = ?", (int(value), username)
    )


# ----- settings -----------------------------------------------------------------------


def get_settings(conn: Connection) -> dict[str, str]:
    return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM settings")}


def put_settings(conn: Connection, values: dict[str, str]) -> None:
    conn.executemany(
        "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        list(values.items()),
    )


# ----- practice CA and signing keys -----------------------------------------------------


def put_practice_ca(
    conn: Connection, cert_pem: bytes, nonce: bytes, wrapped: bytes, created: str
) -> None:
    conn.execute(
        "INSERT INTO practice_ca (id, cert_pem, key_nonce, wrapped_key, created) VALUES (1,?,?,?,?)",
        (cert_pem.decode("ascii"), nonce, wrapped, created),
    )


def get_practice_ca(conn: Connection) -> WrappedKey | None:
    row = conn.execute(
        "SELECT cert_pem, key_nonce, wrapped_key FROM practice_ca WHERE id = 1"
    ).fetchone()
    return WrappedKey(str(row[0]).encode("ascii"), bytes(row[1]), bytes(row[2])) if row else None


def add_signing_key(
    conn: Connection, username: str, key: WrappedKey, source: str, created: str
) -> None:
    conn.execute("UPDATE signing_keys SET active = 0 WHERE username = ?", (username,))
    conn.execute(
        "INSERT INTO signing_keys (username, cert_pem, key_nonce, wrapped_key, source, active, created) VALUES (?,?,?,?,?,1,?)",
        (username, key.cert_pem.decode("ascii"), key.nonce, key.wrapped, source, created),
    )


def active_signing_key(conn: Connection, username: str) -> tuple[int, WrappedKey] | None:
    row = conn.execute(
        "SELECT id, cert_pem, key_nonce, wrapped_key FROM signing_keys WHERE username = ? AND active = 1 ORDER BY id DESC LIMIT 1",
        (username,),
    ).fetchone()
    return (
        (int(row[0]), WrappedKey(str(row[1]).encode("ascii"), bytes(row[2]), bytes(row[3])))
        if row
        else None
    )


def replace_signing_key_wrap(conn: Connection, key_id: int, nonce: bytes, wrapped: bytes) -> None:
    conn.execute(
        "UPDATE signing_keys SET key_nonce = ?, wrapped_key = ? WHERE id = ?",
        (nonce, wrapped, key_id),
    )


def deactivate_signing_keys(conn: Connection, username: str) -> None:
    conn.execute("UPDATE signing_keys SET active = 0 WHERE username = ?", (username,))


# ----- records --------------------------------------------------------------------------

_RECORD_COLUMNS = (
    "r.id, r.clinician, r.status, r.form_id, r.form_version, r.answers, r.current_step, r.outcome, "
    "r.created, r.updated, r.completed, r.child_given, r.child_family, r.child_nhs, r.child_dob, u.full_name"
)
_RECORD_FROM = "FROM records r JOIN users u ON u.username = r.clinician"


def _record(row: Sequence[Any]) -> Record:
    return Record(
        id=str(row[0]),
        clinician=str(row[1]),
        status=str(row[2]),
        form_id=str(row[3]),
        form_version=int(row[4]),
        answers=json.loads(row[5]),
        current_step=row[6],
        outcome=json.loads(row[7]) if row[7] else None,
        created=str(row[8]),
        updated=str(row[9]),
        completed=row[10],
        child=ChildSummary(row[11] or "", row[12] or "", row[13], row[14]),
        clinician_name=str(row[15] or ""),
    )


def _child_columns(answers: dict[str, Any], nhs: str | None) -> tuple[Any, ...]:
    def text(key: str) -> str | None:
        value = answers.get(key)
        return value.strip() if isinstance(value, str) and value.strip() else None

    return (nhs, text("child_given_name"), text("child_family_name"), text("date_of_birth"))


def insert_record(conn: Connection, record: Record, nhs: str | None) -> None:
    conn.execute(
        "INSERT INTO records (id, clinician, status, form_id, form_version, answers, current_step, outcome, created, updated, "
        "completed, child_nhs, child_given, child_family, child_dob) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            record.id,
            record.clinician,
            record.status,
            record.form_id,
            record.form_version,
            json.dumps(record.answers, ensure_ascii=False),
            record.current_step,
            None,
            record.created,
            record.updated,
            None,
            *_child_columns(record.answers, nhs),
        ),
    )


def update_draft(
    conn: Connection,
    record_id: str,
    answers: dict[str, Any],
    current_step: str | None,
    updated: str,
    nhs: str | None,
) -> None:
    conn.execute(
        "UPDATE records SET answers = ?, current_step = ?, updated = ?, child_nhs = ?, child_given = ?, child_family = ?, child_dob = ? "
        "WHERE id = ? AND status = 'draft'",
        (
            json.dumps(answers, ensure_ascii=False),
            current_step,
            updated,
            *_child_columns(answers, nhs),
            record_id,
        ),
    )


def move_draft_to_form(
    conn: Connection,
    record_id: str,
    form_version: int,
    answers: dict[str, Any],
    current_step: str | None,
    updated: str,
) -> None:
    """Point a draft at a newer form version with its carried answers (drafts only)."""
    conn.execute(
        "UPDATE records SET form_version = ?, answers = ?, current_step = ?, updated = ? "
        "WHERE id = ? AND status = 'draft'",
        (form_version, json.dumps(answers, ensure_ascii=False), current_step, updated, record_id),
    )


def _light_outcome(pathway: Any, consent_basis: Any, codes_json: Any) -> dict[str, Any]:
    """The outcome keys a light record carries (no answers, no prompts)."""
    outcome: dict[str, Any] = {
        "pathway": pathway,
        "consent_basis": consent_basis,
        "letter_required": pathway not in (None, "monitor"),
    }
    if codes_json:
        outcome["snomed_codes"] = json.loads(codes_json)
    return outcome


def _light_record(row: Sequence[Any]) -> Record:
    """A record without its answers JSON: enough for states, lists and the dashboard."""
    pathway = row[7]
    return Record(
        id=str(row[0]),
        clinician=str(row[1]),
        status=str(row[2]),
        form_id=str(row[3]),
        form_version=int(row[4]),
        answers={"review_date": row[9], "decision": row[8]},
        current_step=None,
        outcome=_light_outcome(pathway, row[10], row[16]) if row[2] == "completed" else None,
        created=str(row[5]),
        updated=str(row[5]),
        completed=row[6],
        child=ChildSummary(row[11] or "", row[12] or "", row[13], row[14]),
        clinician_name=str(row[15] or ""),
    )


_LIGHT_COLUMNS = (
    "r.id, r.clinician, r.status, r.form_id, r.form_version, r.created, r.completed, r.pathway, r.decision, "
    "r.review_date, r.consent_basis, r.child_given, r.child_family, r.child_nhs, r.child_dob, u.full_name, "
    # the codes to add to the GP record are shown in lists and exports, never the answers
    "json_extract(r.outcome, '$.snomed_codes')"
)


def open_referrals(
    conn: Connection, review_horizon: str, clinician: str | None = None
) -> list[Record]:
    """Completed records that may need action: not closed, and either a referral without a
    decision yet or a monitor decision whose review date falls before `review_horizon`."""
    sql = (
        f"SELECT {_LIGHT_COLUMNS} {_RECORD_FROM} WHERE r.status = 'completed' "
        "AND NOT EXISTS (SELECT 1 FROM followups f WHERE f.record_id = r.id AND f.event = 'closed') "
        "AND ((r.pathway = 'monitor' AND r.review_date <= ?) OR (r.pathway != 'monitor' AND NOT EXISTS "
        "(SELECT 1 FROM followups f WHERE f.record_id = r.id AND f.event IN ('decision', 'feedback'))))"
    )
    params: list[Any] = [review_horizon]
    if clinician:
        sql += " AND r.clinician = ?"
        params.append(clinician)
    return [_light_record(row) for row in conn.execute(sql, params)]


def _monthly_counts(
    conn: Connection, where: str, params: Sequence[Any]
) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, int]]]:
    """(month, pathway, n) and (month, consent basis, n) from one covering-index scan.

    Counted in Python: SQLite's GROUP BY on substr(completed, 1, 7) sorts every row, and its
    sorter is slow under cipher_memory_security (each allocation is wiped): ~3x slower at
    100 000 records.
    """
    pathways: Counter[tuple[str, str]] = Counter()
    bases: Counter[tuple[str, str]] = Counter()
    sql = f"SELECT r.completed, r.pathway, r.consent_basis FROM records r INDEXED BY records_dashboard{where}"
    for completed, pathway, basis in conn.execute(sql, params):
        month = str(completed)[:7]
        pathways[month, pathway or "unknown"] += 1
        bases[month, basis or "unknown"] += 1

    def rows(counts: Counter[tuple[str, str]]) -> list[tuple[str, str, int]]:
        return sorted((m, v, n) for (m, v), n in counts.items())

    return rows(pathways), rows(bases)


def dashboard_rows(
    conn: Connection, date_from: str | None, date_to: str | None, *, with_timings: bool = True
) -> DashboardRows:
    """Monthly counts by pathway and consent basis, and send/acknowledge times, in SQL
    (`with_timings=False`: without the times; send_timings reads them from stored states)."""
    where, params = _where(RecordFilter(status="completed", date_from=date_from, date_to=date_to))

    def grouped(column: str) -> list[tuple[str, str, int]]:
        sql = (
            f"SELECT substr(r.completed, 1, 7), coalesce(r.{column}, 'unknown'), count(*) FROM records r{where} "
            "GROUP BY 1, 2 ORDER BY 1"
        )
        return [(str(a), str(b), int(c)) for a, b, c in conn.execute(sql, params)]

    # Three covering-index scans joined in Python: SQLite's plan for the equivalent join
    # fetched every record row and took ~10x longer on 100 000 records.
    def first(event: str) -> dict[str, str]:
        sql = "SELECT record_id, min(at) FROM followups WHERE event = ? GROUP BY record_id"
        return {str(r): str(at) for r, at in conn.execute(sql, (event,))}

    if not with_timings:
        by_pathway, by_consent = _monthly_counts(conn, where, params)
        return DashboardRows(by_pathway, by_consent, [])
    sent, acknowledged = first("sent"), first("acknowledged")
    completed_sql = f"SELECT r.id, r.completed FROM records r INDEXED BY records_dashboard{where}"
    timings: list[tuple[str, str | None, str | None]] = [
        (str(done), sent[rid], acknowledged.get(rid))
        for rid, done in conn.execute(completed_sql, params)
        if rid in sent
    ]
    return DashboardRows(grouped("pathway"), grouped("consent_basis"), timings)


# ----- stored referral states (migration 0006) ------------------------------------------


def completed_records_light(
    conn: Connection, statuses: Sequence[str] | None = None, record_ids: Sequence[str] | None = None
) -> list[Record]:
    """Completed records without their answers, for recomputing stored referral states:
    all of them, those whose stored state's status is in `statuses`, or those with these ids.

    The answers R4's police-report follow-up and R3's delayed sharing depend on are read too."""
    extracts = ", ".join(f"json_extract(r.answers, '$.{key}')" for key in STATE_ANSWERS)
    sql = (
        f"SELECT {_LIGHT_COLUMNS}, {extracts} {_RECORD_FROM} "
        # With ids, `+` keeps SQLite off the status index: it otherwise scans every completed
        # record for a page of 200 ids (~0.9 s at 100 000 records instead of ~2 ms).
        f"WHERE {'+' if record_ids is not None else ''}r.status = 'completed'"
    )
    params: list[Any] = []
    if statuses is not None:
        sql += (
            " AND r.id IN (SELECT record_id FROM referral_states WHERE status IN "
            f"({','.join('?' * len(statuses)) or 'NULL'}))"
        )
        params.extend(statuses)
    if record_ids is not None:
        sql += f" AND r.id IN ({','.join('?' * len(record_ids)) or 'NULL'})"
        params.extend(record_ids)
    found = []
    for row in conn.execute(sql, params):
        record = _light_record(row)
        record.answers.update(zip(STATE_ANSWERS, row[-len(STATE_ANSWERS) :], strict=True))
        found.append(record)
    return found


def stored_actions(conn: Connection, record_ids: Sequence[str]) -> dict[str, str | None]:
    """The stored next action of each of these records that has a stored referral state."""
    found: dict[str, str | None] = {}
    for first in range(0, len(record_ids), 500):
        page = list(record_ids[first : first + 500])
        sql = (
            "SELECT record_id, action FROM referral_states "
            f"WHERE record_id IN ({','.join('?' * len(page))})"
        )
        found.update({str(rid): action for rid, action in conn.execute(sql, page)})
    return found


def referral_dues(
    conn: Connection, record_ids: Sequence[str] | None = None
) -> dict[str, tuple[str, str]]:
    """(due, action) of the stored referral states with both, of these records (None: all)."""
    sql = f"SELECT s.record_id, s.due, s.action FROM referral_states s WHERE {_DUE}"
    if record_ids is None:
        return {str(rid): (str(due), str(act)) for rid, due, act in conn.execute(sql)}
    found: dict[str, tuple[str, str]] = {}
    for first in range(0, len(record_ids), 500):
        page = list(record_ids[first : first + 500])
        rows = conn.execute(f"{sql} AND s.record_id IN ({','.join('?' * len(page))})", page)
        found.update({str(rid): (str(due), str(act)) for rid, due, act in rows})
    return found


def put_referral_states(conn: Connection, states: Iterable[StoredState]) -> None:
    """Store completed records' referral states in referral_states (insert or replace)."""
    conn.executemany(
        "INSERT INTO referral_states (record_id, status, action, due, sent_at, acknowledged_at, "
        "clinician, child_given, child_family, created, completed) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT(record_id) DO UPDATE SET status = excluded.status, action = excluded.action, "
        "due = excluded.due, sent_at = excluded.sent_at, acknowledged_at = excluded.acknowledged_at",
        [
            (
                st.record.id,
                st.status,
                st.action,
                st.due,
                st.sent_at,
                st.acknowledged_at,
                st.record.clinician,
                st.record.child.given_name,
                st.record.child.family_name,
                st.record.created,
                st.record.completed,
            )
            for st in states
        ],
    )


_DUE = "s.due IS NOT NULL AND s.action IS NOT NULL"


def due_referrals(
    conn: Connection, due_by: str, clinician: str | None = None
) -> list[tuple[str, str, str, str, str, str]]:
    """(record id, clinician, child given, child family, action, due) of completed records
    whose next action falls due on or before `due_by`, earliest first (oldest record first
    on a day), straight from the referral_states_due covering index."""
    sql = (
        "SELECT s.record_id, s.clinician, s.child_given, s.child_family, s.action, s.due "
        f"FROM referral_states s INDEXED BY referral_states_due WHERE {_DUE} AND s.due <= ?"
    )
    params: list[Any] = [due_by]
    if clinician:
        sql += " AND s.clinician = ?"
        params.append(clinician)
    # Index order; a record_id tie-break would add a temp B-tree sort (seconds at 70 000).
    sql += " ORDER BY s.due, s.created"
    return list(conn.execute(sql, params))


def referrals_with_action(
    conn: Connection, action: str, due_after: str, clinician: str | None = None
) -> list[tuple[str, str, str, str, str, str]]:
    """Like due_referrals, for the stored states with this next action due after `due_after`
    (R3's delayed sharing stays listed however far its review date is)."""
    sql = (
        "SELECT s.record_id, s.clinician, s.child_given, s.child_family, s.action, s.due "
        f"FROM referral_states s WHERE {_DUE} AND s.action = ? AND s.due > ?"
    )
    params: list[Any] = [action, due_after]
    if clinician:
        sql += " AND s.clinician = ?"
        params.append(clinician)
    sql += " ORDER BY s.due, s.created"
    return list(conn.execute(sql, params))


def overdue_counts(
    conn: Connection, today_iso: str, date_from: str | None, date_to: str | None
) -> dict[str, int]:
    """Stored referral statuses whose next action was due before `today_iso`, counted, for
    records created in the (whole-day) range."""
    clauses, params = _match_clauses((), "s.created", date_from, date_to)
    where = "".join(f" AND {c}" for c in clauses)
    sql = (
        "SELECT s.status FROM referral_states s INDEXED BY referral_states_due "
        f"WHERE {_DUE} AND s.due < ?{where}"
    )
    # Counted in Python: a GROUP BY here sorts every row (see _monthly_counts).
    return dict(Counter(str(st) for (st,) in conn.execute(sql, [today_iso, *params])))


def send_timings(
    conn: Connection, date_from: str | None, date_to: str | None
) -> list[tuple[str, str | None, str | None]]:
    """(completed, first sent, first acknowledged) of sent referrals created in the range."""
    clauses, params = _match_clauses((), "s.created", date_from, date_to)
    where = "".join(f" AND {c}" for c in clauses)
    sql = (
        "SELECT s.completed, s.sent_at, s.acknowledged_at FROM referral_states s "
        f"INDEXED BY referral_states_sent WHERE s.sent_at IS NOT NULL{where}"
    )
    return [(str(c), sent, ack) for c, sent, ack in conn.execute(sql, params)]


def put_links(conn: Connection, record_id: str, carers: Iterable[str], address: str | None) -> None:
    """Replace a record's normalised carer/address keys (household links)."""
    conn.execute("DELETE FROM record_links WHERE record_id = ?", (record_id,))
    rows = [(record_id, "carer", key) for key in set(carers) if key]
    if address:
        rows.append((record_id, "address", address))
    conn.executemany("INSERT INTO record_links (record_id, kind, key) VALUES (?,?,?)", rows)


def linked_records(
    conn: Connection, carers: Iterable[str], addresses: Iterable[str]
) -> list[Record]:
    """Completed records sharing any of these carer or address keys."""
    keys = [("carer", c) for c in set(carers) if c] + [("address", a) for a in set(addresses) if a]
    if not keys:
        return []
    clause = " OR ".join("(l.kind = ? AND l.key = ?)" for _ in keys)
    params = [v for pair in keys for v in pair]
    sql = (
        f"SELECT {_RECORD_COLUMNS} {_RECORD_FROM} WHERE r.status = 'completed' AND r.id IN "
        f"(SELECT l.record_id FROM record_links l WHERE {clause})"
    )
    return [_record(row) for row in conn.execute(sql, params)]


def add_household_link_review(
    conn: Connection,
    record_id: str,
    other_record_id: str,
    decision: str,
    reviewer: str,
    created: str,
    note: str | None,
) -> None:
    conn.execute(
        "INSERT INTO household_link_reviews (record_id, other_record_id, decision, reviewer, created, note) "
        "VALUES (?,?,?,?,?,?)",
        (record_id, other_record_id, decision, reviewer, created, note),
    )


def household_link_decisions(conn: Connection, record_ids: Sequence[str]) -> dict[str, str]:
    """Latest decision per other record, over reviews made from any of `record_ids`."""
    if not record_ids:
        return {}
    marks = ",".join("?" * len(record_ids))
    # Sealed reviews (migration 0008: decision NULL, review_ct set) are read by household_reviews.
    sql = (
        f"SELECT other_record_id, decision FROM household_link_reviews WHERE record_id IN ({marks}) "
        "AND decision IS NOT NULL ORDER BY id"
    )
    return {str(other): str(decision) for other, decision in conn.execute(sql, list(record_ids))}


def records_without_links(conn: Connection) -> list[Record]:
    """Completed records not yet in record_links (backfill after migration 0003)."""
    sql = (
        f"SELECT {_RECORD_COLUMNS} {_RECORD_FROM} WHERE r.status = 'completed' "
        "AND NOT EXISTS (SELECT 1 FROM record_links l WHERE l.record_id = r.id)"
    )
    return [_record(row) for row in conn.execute(sql)]


def complete_record(
    conn: Connection,
    record_id: str,
    answers: dict[str, Any],
    outcome: dict[str, Any],
    completed: str,
    nhs: str | None,
) -> None:
    decision = answers.get("decision")
    conn.execute(
        "UPDATE records SET status = 'completed', answers = ?, outcome = ?, completed = ?, updated = ?, child_nhs = ?, "
        "child_given = ?, child_family = ?, child_dob = ?, pathway = ?, consent_basis = ?, decision = ?, review_date = ? "
        "WHERE id = ? AND status = 'draft'",
        (
            json.dumps(answers, ensure_ascii=False),
            json.dumps(outcome, ensure_ascii=False),
            completed,
            completed,
            *_child_columns(answers, nhs),
            outcome.get("pathway"),
            outcome.get("consent_basis"),
            decision if isinstance(decision, str) else None,
            answers.get("review_date"),
            record_id,
        ),
    )


def get_record(conn: Connection, record_id: str) -> Record | None:
    row = conn.execute(
        f"SELECT {_RECORD_COLUMNS} {_RECORD_FROM} WHERE r.id = ?", (record_id,)
    ).fetchone()
    return _record(row) if row else None


def delete_draft(conn: Connection, record_id: str) -> None:
    row = conn.execute(
        "SELECT s.id FROM records_search s JOIN records r ON r.id = s.record_id "
        "WHERE s.record_id = ? AND r.status = 'draft'",
        (record_id,),
    ).fetchone()
    if row:
        conn.execute("DELETE FROM records_fts WHERE rowid = ?", (row[0],))
        conn.execute("DELETE FROM records_search WHERE id = ?", (row[0],))
    conn.execute("DELETE FROM records WHERE id = ? AND status = 'draft'", (record_id,))


def _match_clauses(
    equals: Sequence[tuple[str, str | None]],
    day_column: str,
    day_from: str | None,
    day_to: str | None,
) -> tuple[list[str], list[Any]]:
    """`column = ?` for each given value, and a range of whole days on an ISO-text column.

    The range is written as plain comparisons (`>= from`, `< day after to`) so an index on the
    column can serve it; it selects exactly the days substr(column, 1, 10) would.
    """
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in equals:
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if day_from:
        clauses.append(f"{day_column} >= ?")
        params.append(day_from)
    if day_to:
        clauses.append(f"{day_column} < ?")
        params.append(_day_after(day_to))
    return clauses, params


def _where(flt: RecordFilter) -> tuple[str, list[Any]]:
    clauses, params = _match_clauses(
        (
            ("r.clinician", flt.clinician),
            ("r.status", flt.status),
            ("r.pathway", flt.pathway),
            ("r.consent_basis", flt.consent_basis),
            ("r.child_nhs", flt.child_nhs),
        ),
        "r.created",
        flt.date_from,
        flt.date_to,
    )
    if flt.search:
        clauses.append(
            "r.id IN (SELECT s.record_id FROM records_fts f JOIN records_search s ON s.id = f.rowid "
            "WHERE records_fts MATCH ?)"
        )
        params.append(fts_query(flt.search))
    if flt.record_ids is not None:
        clauses.append(f"r.id IN ({','.join('?' * len(flt.record_ids)) or 'NULL'})")
        params.extend(flt.record_ids)
    if flt.overdue_on:
        clauses.append(
            f"r.id IN (SELECT s.record_id FROM referral_states s WHERE {_DUE} AND s.due < ?)"
        )
        params.append(flt.overdue_on)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _day_after(day: str) -> str:
    """Exclusive upper bound for `created < ?` that keeps the whole of `day`."""
    try:
        return (date.fromisoformat(day[:10]) + timedelta(days=1)).isoformat()
    except ValueError:
        return day + "\uffff"  # not a date: every `created` starting with it still matches


def fts_query(text: str) -> str:
    """Turn what a user typed into a safe FTS5 query: each word a quoted prefix term."""
    words = [w.replace('"', '""') for w in text.split() if w.strip()]
    return " ".join(f'"{w}"*' for w in words) or '""'


def _list_record(row: Sequence[Any]) -> Record:
    """A light record (see _light_record) with its real `updated` (last column)."""
    return replace(_light_record(row), updated=str(row[-1]))


def list_records(
    conn: Connection,
    flt: RecordFilter,
    limit: int | None = None,
    offset: int = 0,
    order: str = "r.updated DESC",
    *,
    light: bool = False,
) -> list[Record]:
    """Records matching `flt`, `order`ed; `light` ones carry no answers (a list never shows
    them, and parsing ~5 KB of JSON per row was a third of a search's time)."""
    where, params = _where(flt)
    columns, make = (
        (f"{_LIGHT_COLUMNS}, r.updated", _list_record) if light else (_RECORD_COLUMNS, _record)
    )
    if limit is not None and flt.search and order == "r.updated DESC" and _search_only(flt):
        return [make(r) for r in _search_page(conn, flt.search, limit, offset, columns)]
    if limit is None:
        sql = f"SELECT {columns} {_RECORD_FROM}{where} ORDER BY {order}"
    else:
        # Pick the page's rows from the indexes first, then read only those rows: ORDER BY …
        # LIMIT over whole rows reads (and decrypts) every matching record with its answers.
        # `order` may only use columns of r. A search is ordered from records_id_updated so
        # that the matches' `updated` comes from the index, not from each record's row.
        hint = " INDEXED BY records_id_updated" if flt.search else ""
        sql = (
            f"SELECT {columns} {_RECORD_FROM} WHERE r.rowid IN "
            f"(SELECT r.rowid FROM records r{hint}{where} ORDER BY {order} LIMIT ? OFFSET ?) "
            f"ORDER BY {order}"
        )
        params += [limit, offset]
    return [make(r) for r in conn.execute(sql, params)]


def _search_only(flt: RecordFilter) -> bool:
    """True when `flt` is a full-text search and nothing else."""
    return all(
        value is None or field == "search" or value == "" for field, value in vars(flt).items()
    )


def _search_page(
    conn: Connection, text: str, limit: int, offset: int, columns: str
) -> list[Sequence[Any]]:
    """A page of a plain search, newest first: the newest matches are picked from
    (records_search.updated, record_id) pairs in Python (SQLite's sorter is slow under
    cipher_memory_security), then only those rows are read."""
    matches = conn.execute(
        "SELECT coalesce(s.updated, ''), s.record_id FROM records_fts f "
        "JOIN records_search s ON s.id = f.rowid WHERE records_fts MATCH ?",
        (fts_query(text),),
    )
    ids = [rid for _updated, rid in heapq.nlargest(offset + limit, matches)[offset:]]
    if not ids:
        return []
    sql = (
        f"SELECT {columns} {_RECORD_FROM} WHERE r.id IN ({','.join('?' * len(ids))}) "
        "ORDER BY r.updated DESC, r.id DESC"
    )
    return list(conn.execute(sql, ids))


def count_records(conn: Connection, flt: RecordFilter) -> int:
    where, params = _where(flt)
    # records.clinician references users (foreign keys are on), so joining users cannot change
    # the count; without the join SQLite counts from an index instead of every row.
    return int(conn.execute(f"SELECT count(*) FROM records r{where}", params).fetchone()[0])


def records_for_child(
    conn: Connection, nhs: str | None, family: str | None, dob: str | None, exclude: str | None
) -> list[tuple[Record, str]]:
    """Completed records about the same child: ('nhs', record) matches and probable name+DOB ones."""
    found: dict[str, tuple[Record, str]] = {}
    if nhs:
        for row in conn.execute(
            f"SELECT {_RECORD_COLUMNS} {_RECORD_FROM} WHERE r.child_nhs = ? AND r.status = 'completed'",
            (nhs,),
        ):
            rec = _record(row)
            found[rec.id] = (rec, "nhs")
    if family and dob:
        # SQLite's lower() only folds ASCII; compare names in Python so "Ó Briain" matches "ó briain".
        wanted = " ".join(family.casefold().split())
        rows = conn.execute(
            f"SELECT {_RECORD_COLUMNS} {_RECORD_FROM} WHERE r.child_dob = ? AND r.status = 'completed'",
            (dob,),
        )
        for row in rows:
            rec = _record(row)
            if " ".join(rec.child.family_name.casefold().split()) != wanted:
                continue
            # A different valid NHS number on both sides means a different child.
            if rec.id not in found and not (
                nhs and rec.child.nhs_number and rec.child.nhs_number != nhs
            ):
                found[rec.id] = (rec, "probable")
    found.pop(exclude or "", None)
    return sorted(found.values(), key=lambda pair: pair[0].created)


def put_search_text(conn: Connection, record_id: str, body: str) -> None:
    """Replace a record's full-text entry, found by its integer key (records_search)."""
    conn.execute("INSERT OR IGNORE INTO records_search (record_id) VALUES (?)", (record_id,))
    (key,) = conn.execute(
        "SELECT id FROM records_search WHERE record_id = ?", (record_id,)
    ).fetchone()
    conn.execute("DELETE FROM records_fts WHERE rowid = ?", (key,))
    if body:
        conn.execute("INSERT INTO records_fts (rowid, body) VALUES (?, ?)", (key, body))


# ----- addenda, letters, follow-ups, reviews -----------------------------------------


def add_addendum(conn: Connection, record_id: str, author: str, created: str, body: str) -> int:
    cur = conn.execute(
        "INSERT INTO addenda (record_id, author, created, body) VALUES (?,?,?,?)",
        (record_id, author, created, body),
    )
    return int(cur.lastrowid or 0)


def addenda(conn: Connection, record_id: str) -> list[Addendum]:
    return [
        Addendum(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]))
        for r in conn.execute(
            # Sealed addenda (migration 0008) are read by sealed_addenda.
            "SELECT id, record_id, author, created, body FROM addenda WHERE record_id = ? AND body_ct IS NULL ORDER BY id",
            (record_id,),
        )
    ]


def add_letter(
    conn: Connection,
    record_id: str,
    created: str,
    signer: str,
    sha256: str,
    pdf: bytes,
    unsigned: bytes | None = None,
) -> int:
    cur = conn.execute(
        "INSERT INTO letters (record_id, created, signer, sha256, pdf, unsigned_pdf) VALUES (?,?,?,?,?,?)",
        (record_id, created, signer, sha256, pdf, unsigned),
    )
    return int(cur.lastrowid or 0)


def letter_unsigned_pdf(conn: Connection, letter_id: int) -> bytes | None:
    row = conn.execute("SELECT unsigned_pdf FROM letters WHERE id = ?", (letter_id,)).fetchone()
    return bytes(row[0]) if row and row[0] is not None else None


def letters(conn: Connection, record_id: str) -> list[LetterMeta]:
    return [
        LetterMeta(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]))
        for r in conn.execute(
            "SELECT id, record_id, created, signer, sha256 FROM letters WHERE record_id = ? ORDER BY id",
            (record_id,),
        )
    ]


def letter_pdf(conn: Connection, letter_id: int) -> tuple[LetterMeta, bytes] | None:
    row = conn.execute(
        "SELECT id, record_id, created, signer, sha256, pdf FROM letters WHERE id = ?", (letter_id,)
    ).fetchone()
    if not row:
        return None
    return LetterMeta(int(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4])), bytes(
        row[5]
    )


def letter_by_hash(conn: Connection, sha256: str) -> LetterMeta | None:
    row = conn.execute(
        "SELECT id, record_id, created, signer, sha256 FROM letters WHERE sha256 = ?", (sha256,)
    ).fetchone()
    return (
        LetterMeta(int(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4])) if row else None
    )


def add_followup(conn: Connection, fu: FollowUp) -> int:
    cur = conn.execute(
        "INSERT INTO followups (record_id, event, at, recorded_by, recorded_at, decision, note, details) VALUES (?,?,?,?,?,?,?,?)",
        (
            fu.record_id,
            fu.event,
            fu.at,
            fu.recorded_by,
            fu.recorded_at,
            fu.decision,
            fu.note,
            json.dumps(fu.details, ensure_ascii=False),
        ),
    )
    return int(cur.lastrowid or 0)


def followups(conn: Connection, record_ids: Iterable[str] | None = None) -> list[FollowUp]:
    """Follow-up events, oldest first, for the given records (or all)."""
    sql = "SELECT id, record_id, event, at, recorded_by, recorded_at, decision, note, details FROM followups"
    wanted: set[str] | None = None
    rows: list[Any] = []
    if record_ids is None:
        rows = list(conn.execute(sql))
    else:
        ids = list(dict.fromkeys(record_ids))
        if len(ids) > 500:
            # Beyond a few hundred ids one pass over the table beats many IN (...) queries
            # and stays under SQLite's bound-variable limit.
            wanted = set(ids)
            rows = list(conn.execute(sql))
        else:
            for first in range(0, len(ids), 250):
                chunk = ids[first : first + 250]
                rows.extend(
                    conn.execute(f"{sql} WHERE record_id IN ({','.join('?' * len(chunk))})", chunk)
                )
    events = [
        FollowUp(
            int(r[0]),
            str(r[1]),
            str(r[2]),
            str(r[3]),
            str(r[4]),
            str(r[5]),
            r[6],
            r[7],
            json.loads(r[8] or "{}"),
        )
        for r in rows
        if wanted is None or r[1] in wanted
    ]
    events.sort(key=lambda f: (f.at, f.id))
    return events


def add_review(conn: Connection, review: Review) -> int:
    cur = conn.execute(
        "INSERT INTO reviews (record_id, reviewer, created, verdict, comments, learning) VALUES (?,?,?,?,?,?)",
        (
            review.record_id,
            review.reviewer,
            review.created,
            review.verdict,
            review.comments,
            review.learning,
        ),
    )
    return int(cur.lastrowid or 0)


def reviews(conn: Connection, record_id: str | None = None) -> list[Review]:
    # Sealed reviews (migration 0008: verdict NULL) are read by sealed_reviews.
    sql = "SELECT id, record_id, reviewer, created, verdict, comments, learning FROM reviews WHERE verdict IS NOT NULL"
    params: list[Any] = []
    if record_id:
        sql += " AND record_id = ?"
        params.append(record_id)
    return [
        Review(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), r[5], r[6])
        for r in conn.execute(sql + " ORDER BY id", params)
    ]


# ----- audit reads --------------------------------------------------------------------


def last_draft_saved_at(conn: Connection, record_id: str) -> str | None:
    """When the newest 'draft_saved' audit event of a record was written (ISO), or None."""
    row = conn.execute(
        "SELECT at FROM audit WHERE record_id = ? AND action = 'draft_saved' ORDER BY seq DESC LIMIT 1",
        (record_id,),
    ).fetchone()
    return str(row[0]) if row else None


def audit_events(
    conn: Connection, flt: AuditFilter, limit: int | None = None, offset: int = 0
) -> list[AuditEvent]:
    clauses, params = _match_clauses(
        (("actor", flt.actor), ("action", flt.action), ("record_id", flt.record_id)),
        "at",
        flt.date_from,
        flt.date_to,
    )
    sql = "SELECT seq, at, actor, action, record_id, details FROM audit"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY seq DESC"
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params += [limit, offset]
    return [
        AuditEvent(int(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4], json.loads(r[5]))
        for r in conn.execute(sql, params)
    ]


def audit_events_after(conn: Connection, seq: int, limit: int | None = None) -> list[AuditEvent]:
    """Events after `seq`, oldest first (a range of the primary key)."""
    sql = "SELECT seq, at, actor, action, record_id, details FROM audit WHERE seq > ? ORDER BY seq"
    params: list[Any] = [seq]
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [
        AuditEvent(int(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4], json.loads(r[5]))
        for r in conn.execute(sql, params)
    ]


# ----- vault version 2 key tables (migration 0007) ---------------------------------------
# gpshare.store.keys is imported inside the functions that build its types, so opening a
# store does not load it (about 20 ms) before anything uses these tables.

# Row values per IN (VALUES …) query: two bound variables each, well under SQLite's limit.
_PAIRS_PER_QUERY = 250


def _bundle(row: Sequence[Any]) -> StoredBundle:
    from gpshare.store.keys.bundle import SealedBundle

    kdf = KdfParams.from_dict(json.loads(row[3]))
    sealed = SealedBundle(int(row[1]), kdf, bytes(row[4]), bytes(row[5]))
    return StoredBundle(str(row[0]), row[2], sealed, str(row[6]))


def bundle(conn: Connection, user_id: str, generation: int | None = None) -> StoredBundle | None:
    """The user's bundle of `generation`, or their newest one."""
    sql = "SELECT user_id, generation, state, kdf, salt, blob, created FROM key_bundles WHERE user_id = ?"
    params: list[Any] = [user_id]
    if generation is not None:
        sql += " AND generation = ?"
        params.append(generation)
    row = conn.execute(sql + " ORDER BY generation DESC LIMIT 1", params).fetchone()
    return _bundle(row) if row else None


def put_bundle(conn: Connection, stored: StoredBundle) -> None:
    """Insert a bundle generation, or replace the seal and state of an existing one."""
    sealed = stored.sealed
    conn.execute(
        "INSERT INTO key_bundles (user_id, generation, state, kdf, salt, blob, created) VALUES (?,?,?,?,?,?,?) "
        "ON CONFLICT(user_id, generation) DO UPDATE SET state = excluded.state, kdf = excluded.kdf, "
        "salt = excluded.salt, blob = excluded.blob",
        (
            stored.user_id,
            sealed.generation,
            stored.state,
            json.dumps(sealed.kdf.to_dict(), sort_keys=True),
            sealed.salt,
            sealed.blob,
            stored.created,
        ),
    )


_DIRECTORY_COLUMNS = (
    "id, kind, user_id, generation, role, public_key, active, signature, created, lead_access_key"
)


def _directory_row(row: Sequence[Any]) -> DirectoryRow:
    return DirectoryRow(
        id=int(row[0]),
        kind=row[1],
        user_id=row[2],
        generation=int(row[3]),
        role=row[4],
        public_key=bytes(row[5]),
        active=None if row[6] is None else bool(row[6]),
        signature=None if row[7] is None else bytes(row[7]),
        created=str(row[8]),
        lead_access_key=None if row[9] is None else bytes(row[9]),
    )


def add_directory_entry(conn: Connection, signed: SignedEntry, created: str) -> int:
    """Append a directory row from a (possibly unsigned) keys.directory entry."""
    from gpshare.store.keys.directory import UserEntry

    entry = signed.entry
    status = "pending" if signed.signature is None else "confirmed"
    if isinstance(entry, UserEntry):
        values: tuple[Any, ...] = (
            "user",
            entry.user_id,
            entry.key_generation,
            entry.role,
            entry.public_key,
            int(entry.active),
            entry.lead_access_key,
        )
    else:
        values = ("lead-key", None, entry.generation, None, entry.public_key, None, None)
    cur = conn.execute(
        "INSERT INTO directory (kind, user_id, generation, role, public_key, active, "
        "lead_access_key, signature, status, created) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (*values, signed.signature, status, created),
    )
    return int(cur.lastrowid or 0)


def _equal(pairs: Sequence[tuple[str, object]]) -> tuple[str, list[Any]]:
    """` WHERE column = ? AND …` over the values that are not None ("" when none is given)."""
    given = [(column, value) for column, value in pairs if value is not None]
    if not given:
        return "", []
    return " WHERE " + " AND ".join(f"{c} = ?" for c, _ in given), [v for _, v in given]


def directory_entries(
    conn: Connection, user_id: str | None = None, kind: str | None = None
) -> list[DirectoryRow]:
    """Directory rows oldest first, optionally of one user and/or one kind."""
    where, params = _equal((("user_id", user_id), ("kind", kind)))
    sql = f"SELECT {_DIRECTORY_COLUMNS} FROM directory{where} ORDER BY id"
    return [_directory_row(r) for r in conn.execute(sql, params)]


def pending_entries(conn: Connection) -> list[DirectoryRow]:
    """Each user's newest directory row where that row is still unsigned."""
    sql = (
        f"SELECT {_DIRECTORY_COLUMNS} FROM directory d WHERE d.kind = 'user' AND d.status = 'pending' "
        "AND d.id = (SELECT max(n.id) FROM directory n WHERE n.kind = 'user' AND n.user_id = d.user_id) "
        "ORDER BY d.id"
    )
    return [_directory_row(r) for r in conn.execute(sql)]


def add_lead_rotation(conn: Connection, statement: RotationStatement) -> None:
    conn.execute(
        "INSERT INTO lead_rotations (generation, previous_key, new_key, signature) VALUES (?,?,?,?)",
        (statement.generation, statement.previous_key, statement.new_key, statement.signature),
    )


def lead_rotations(conn: Connection) -> list[LeadRotation]:
    return [
        LeadRotation(int(r[0]), bytes(r[1]), bytes(r[2]), bytes(r[3]))
        for r in conn.execute(
            "SELECT generation, previous_key, new_key, signature FROM lead_rotations ORDER BY generation"
        )
    ]


def add_role_key_wraps(conn: Connection, wraps: Iterable[RoleKeyWrap]) -> None:
    conn.executemany(
        "INSERT INTO role_key_wraps (key_name, generation, recipient, recipient_generation, wrap) VALUES (?,?,?,?,?)",
        [(w.key_name, w.generation, w.recipient, w.recipient_generation, w.wrap) for w in wraps],
    )


def role_key_wraps(
    conn: Connection, recipient: str | None = None, key_name: str | None = None
) -> list[RoleKeyWrap]:
    """Role key wraps, optionally of one recipient and/or one key."""
    where, params = _equal((("recipient", recipient), ("key_name", key_name)))
    sql = (
        "SELECT key_name, generation, recipient, recipient_generation, wrap FROM role_key_wraps"
        f"{where} ORDER BY key_name, generation, recipient, recipient_generation"
    )
    return [
        RoleKeyWrap(r[0], int(r[1]), str(r[2]), int(r[3]), bytes(r[4]))
        for r in conn.execute(sql, params)
    ]


def add_object_wraps(conn: Connection, wraps: Iterable[ObjectWrap]) -> None:
    conn.executemany(
        "INSERT INTO object_wraps (object_kind, object_id, recipient, recipient_generation, wrap, created) "
        "VALUES (?,?,?,?,?,?)",
        [
            (w.object_kind, w.object_id, w.recipient, w.recipient_generation, w.wrap, w.created)
            for w in wraps
        ],
    )


def object_wraps_for(
    conn: Connection, recipient: str, objects: Iterable[tuple[str, str]] | None = None
) -> list[ObjectWrap]:
    """The recipient's wraps of these (kind, id) objects, or of all its objects."""
    sql = (
        "SELECT object_kind, object_id, recipient, recipient_generation, wrap, created "
        "FROM object_wraps WHERE recipient = ?"
    )
    if objects is None:
        rows = list(conn.execute(sql, (recipient,)))
    else:
        pairs = list(dict.fromkeys((str(kind), str(oid)) for kind, oid in objects))
        rows = []
        for first in range(0, len(pairs), _PAIRS_PER_QUERY):
            chunk = pairs[first : first + _PAIRS_PER_QUERY]
            values = ",".join("(?,?)" for _ in chunk)
            params = [recipient, *(part for pair in chunk for part in pair)]
            rows.extend(
                conn.execute(f"{sql} AND (object_kind, object_id) IN (VALUES {values})", params)
            )
    found = [
        ObjectWrap(str(r[0]), str(r[1]), str(r[2]), int(r[3]), bytes(r[4]), str(r[5])) for r in rows
    ]
    found.sort(key=lambda w: (w.object_kind, w.object_id, w.recipient_generation))
    return found


def add_remembered_login(conn: Connection, user_id: str, workstation: str, created: str) -> int:
    cur = conn.execute(
        "INSERT INTO remembered_logins (user_id, workstation, created) VALUES (?,?,?)",
        (user_id, workstation, created),
    )
    return int(cur.lastrowid or 0)


def revoke_remembered_login(conn: Connection, login_id: int, revoked: str) -> None:
    conn.execute("UPDATE remembered_logins SET revoked = ? WHERE id = ?", (revoked, login_id))


def remembered_logins(conn: Connection, user_id: str | None = None) -> list[RememberedLogin]:
    where, params = _equal((("user_id", user_id),))
    sql = f"SELECT id, user_id, workstation, created, revoked FROM remembered_logins{where} ORDER BY id"
    return [
        RememberedLogin(int(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4])
        for r in conn.execute(sql, params)
    ]


def add_breakglass_ack(conn: Connection, event_seq: int, user_id: str, at: str) -> None:
    conn.execute(
        "INSERT INTO breakglass_acks (event_seq, user_id, at) VALUES (?,?,?)",
        (event_seq, user_id, at),
    )


def breakglass_state(conn: Connection) -> BreakglassState | None:
    """The newest breakglass_used event (from its partial index) and its acknowledgements."""
    # The event name is written into the SQL (a constant, not input): SQLite uses a partial
    # index only when the query's WHERE matches the index's, which a bound value cannot.
    row = conn.execute(
        "SELECT seq, at FROM audit INDEXED BY audit_breakglass_used "
        f"WHERE action = '{BREAKGLASS_EVENT}' ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    if not row:
        return None
    acks = conn.execute(
        "SELECT user_id FROM breakglass_acks WHERE event_seq = ? ORDER BY at, user_id", (row[0],)
    )
    return BreakglassState(int(row[0]), str(row[1]), tuple(str(a[0]) for a in acks))
