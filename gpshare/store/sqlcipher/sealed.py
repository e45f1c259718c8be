"""All SQL for sealed records (migration 0008, docs/vault-v2.md §1.3): M rows, C summaries,
blind tokens, and the N objects of records, addenda, letters, follow-ups, reviews and household
link reviews. Everything it stores or returns is M or ciphertext made by the record codec."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from gpshare.errors import StaleVersionError
from gpshare.records import FollowUp, LetterMeta
from gpshare.store.port import (
    IndexToken,
    ObjectWrap,
    RecordRow,
    RecordWrite,
    SealedAddendum,
    SealedFollowUp,
    SealedHouseholdReview,
    SealedLetter,
    SealedObject,
    SealedRecord,
    SealedReview,
    StoredSummary,
    TokenMatch,
)
from gpshare.store.sqlcipher.db import Connection
from gpshare.store.sqlcipher.repositories import _RECORD_FROM, add_object_wraps

# Ids per IN (…) query: well under SQLite's bound-variable limit.
_IDS_PER_QUERY = 250
# The v1 columns a sealed row must still fill (NOT NULL until step 8's migration drops them):
# an empty value, never the plaintext.
_NO_ANSWERS = "{}"

_ROW_COLUMNS = (
    "r.id, r.clinician, r.status, r.form_id, r.form_version, r.current_step, r.created, "
    "r.updated, r.completed, r.version, u.full_name"
)
# The same join as the v1 record reads (the author's display name comes from users).
_ROW_FROM = _RECORD_FROM


def _row(r: Sequence[Any]) -> RecordRow:
    return RecordRow(
        str(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]), r[5], str(r[6]), str(r[7]),
        r[8], int(r[9]), str(r[10] or ""),
    )  # fmt: skip


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for first in range(0, len(items), _IDS_PER_QUERY):
        yield items[first : first + _IDS_PER_QUERY]


def _marks(items: Sequence[Any]) -> str:
    return ",".join("?" * len(items)) or "NULL"


def _wraps_of(
    conn: Connection, objects: Sequence[tuple[str, str]], recipients: Sequence[str]
) -> dict[tuple[str, str], tuple[ObjectWrap, ...]]:
    """The wraps of these (kind, id) objects for these recipients, by object: one index search
    on object_wraps' primary key per object and recipient."""
    found: dict[tuple[str, str], list[ObjectWrap]] = {}
    people = list(dict.fromkeys(recipients))
    pairs = list(dict.fromkeys(objects))
    if not people or not pairs:
        return {}
    # Chunked so pairs × recipients stays under the bound-variable limit.
    per_query = max(1, _IDS_PER_QUERY // len(people))
    for first in range(0, len(pairs), per_query):
        chunk = pairs[first : first + per_query]
        values = ",".join("(?,?)" for _ in chunk)
        sql = (
            "SELECT object_kind, object_id, recipient, recipient_generation, wrap, created "
            f"FROM object_wraps WHERE (object_kind, object_id) IN (VALUES {values}) "
            f"AND recipient IN ({_marks(people)})"
        )
        params = [part for pair in chunk for part in pair] + people
        for r in conn.execute(sql, params):
            wrap = ObjectWrap(str(r[0]), str(r[1]), str(r[2]), int(r[3]), bytes(r[4]), str(r[5]))
            found.setdefault((wrap.object_kind, wrap.object_id), []).append(wrap)
    return {
        pair: tuple(sorted(ws, key=lambda w: (w.recipient, w.recipient_generation)))
        for pair, ws in found.items()
    }


def _sealed(
    kind: str,
    object_id: Any,
    ct: Any,
    commit: Any,
    wraps: dict[tuple[str, str], tuple[ObjectWrap, ...]],
) -> SealedObject | None:
    if ct is None:
        return None
    return SealedObject(
        kind, str(object_id), bytes(ct), bytes(commit), wraps.get((kind, str(object_id)), ())
    )


# ----- records, summaries and blind tokens ------------------------------------------------


def _put_summary(conn: Connection, summary: StoredSummary) -> None:
    conn.execute(
        "INSERT INTO record_summaries (record_id, version, generation, ct) VALUES (?,?,?,?) "
        "ON CONFLICT(record_id) DO UPDATE SET version = excluded.version, "
        "generation = excluded.generation, ct = excluded.ct",
        (summary.record_id, summary.version, summary.generation, summary.ct),
    )


def _put_summary_and_tokens(conn: Connection, write: RecordWrite) -> None:
    if write.summary is not None:
        _put_summary(conn, write.summary)
        put_blind_tokens(conn, write.row.id, write.summary.generation, write.tokens)


def insert_sealed_record(conn: Connection, write: RecordWrite) -> None:
    write.check()
    row, answers = write.row, write.answers
    conn.execute(
        "INSERT INTO records (id, clinician, status, form_id, form_version, answers, current_step, "
        "outcome, created, updated, completed, version, answers_ct, answers_commit) "
        "VALUES (?,?,'draft',?,?,?,?,NULL,?,?,NULL,?,?,?)",
        (
            row.id, row.clinician, row.form_id, row.form_version, _NO_ANSWERS, row.current_step,
            row.created, row.updated, row.version, answers.ct, answers.commitment,
        ),
    )  # fmt: skip
    add_object_wraps(conn, write.answers.wraps)
    _put_summary_and_tokens(conn, write)


def _stale(conn: Connection, write: RecordWrite, doing: str) -> StaleVersionError:
    found = conn.execute(
        "SELECT status, version FROM records WHERE id = ?", (write.row.id,)
    ).fetchone()
    if found is None:
        why = "it no longer exists (a draft that was deleted)"
    elif found[0] != "draft":
        why = "it has been completed since it was opened"
    else:
        why = (
            f"it was saved elsewhere meanwhile (it is at version {found[1]}, this copy was "
            f"opened at version {write.base_version})"
        )
    return StaleVersionError(
        f"Record {write.row.id} was not {doing}: {why}. Nothing was written. Close it and "
        "open it again to see the newest version."
    )


def _update_row(conn: Connection, write: RecordWrite, completed: bool, doing: str) -> None:
    write.check()
    row, answers = write.row, write.answers
    # Optimistic: the row changes only if it is still the draft at the version it was read at.
    cur = conn.execute(
        "UPDATE records SET form_version = ?, current_step = ?, updated = ?, version = ?, "
        "answers_ct = ?, answers_commit = ? WHERE id = ? AND status = 'draft' AND version = ?",
        (
            row.form_version, row.current_step, row.updated, row.version, answers.ct,
            answers.commitment, row.id, write.base_version,
        ),
    )  # fmt: skip
    if cur.rowcount != 1:
        raise _stale(conn, write, doing)
    # The summary and tokens go before completion: once completed, their triggers freeze them.
    add_object_wraps(conn, answers.wraps)
    _put_summary_and_tokens(conn, write)
    if completed:
        conn.execute(
            "UPDATE records SET status = 'completed', completed = ? WHERE id = ?",
            (row.completed or row.updated, row.id),
        )


def update_sealed_draft(conn: Connection, write: RecordWrite) -> None:
    _update_row(conn, write, completed=False, doing="saved")


def complete_sealed_record(conn: Connection, write: RecordWrite) -> None:
    _update_row(conn, write, completed=True, doing="completed")


def put_blind_tokens(
    conn: Connection, record_id: str, generation: int, tokens: Iterable[IndexToken]
) -> None:
    given = list(tokens)
    if any(t.generation != generation for t in given):
        raise ValueError("blind tokens must be of the generation they are stored under")
    rows = list(dict.fromkeys((generation, t.type, t.token, record_id) for t in given))
    conn.execute(
        "DELETE FROM blind_index WHERE record_id = ? AND generation = ?", (record_id, generation)
    )
    conn.executemany(
        "INSERT INTO blind_index (generation, type, token, record_id) VALUES (?,?,?,?)", rows
    )


def _summary(r: Sequence[Any]) -> StoredSummary:
    return StoredSummary(str(r[0]), int(r[1]), int(r[2]), bytes(r[3]))


def sealed_record(
    conn: Connection, record_id: str, recipients: Sequence[str]
) -> SealedRecord | None:
    return sealed_records(conn, [record_id], recipients).get(record_id)


def sealed_records(
    conn: Connection, record_ids: Sequence[str], recipients: Sequence[str]
) -> dict[str, SealedRecord]:
    """The sealed records of these ids (a missing id is left out), by id, a chunk of ids per
    query and one wraps query per chunk."""
    found: dict[str, SealedRecord] = {}
    for chunk in _chunks(list(dict.fromkeys(record_ids))):
        rows = list(
            conn.execute(
                f"SELECT {_ROW_COLUMNS}, r.answers_ct, r.answers_commit, s.record_id, "
                f"s.version, s.generation, s.ct {_ROW_FROM} "
                "LEFT JOIN record_summaries s ON s.record_id = r.id "
                f"WHERE r.id IN ({_marks(chunk)})",
                list(chunk),
            )
        )
        sealed_ids = [("answers", str(r[0])) for r in rows if r[11] is not None]
        wraps = _wraps_of(conn, sealed_ids, recipients)
        for r in rows:
            row = _row(r)
            summary = _summary(r[13:17]) if r[13] is not None else None
            found[row.id] = SealedRecord(
                row, summary, _sealed("answers", row.id, r[11], r[12], wraps)
            )
    return found


def summaries(conn: Connection, record_ids: Sequence[str]) -> list[StoredSummary]:
    ids = list(dict.fromkeys(record_ids))
    found: list[StoredSummary] = []
    for chunk in _chunks(ids):
        sql = (
            "SELECT record_id, version, generation, ct FROM record_summaries "
            f"WHERE record_id IN ({_marks(chunk)})"
        )
        found.extend(_summary(r) for r in conn.execute(sql, list(chunk)))
    order = {rid: n for n, rid in enumerate(ids)}
    return sorted(found, key=lambda s: order[s.record_id])


def records_for_tokens(
    conn: Connection, tokens: Sequence[IndexToken], exclude: str | None
) -> list[TokenMatch]:
    wanted = list(dict.fromkeys((t.type, t.generation, t.token) for t in tokens))
    matches: dict[str, TokenMatch] = {}
    per_query = _IDS_PER_QUERY // 3
    for first in range(0, len(wanted), per_query):
        chunk = wanted[first : first + per_query]
        values = ",".join("(?,?,?)" for _ in chunk)
        # Each (type, token) is an index search on blind_index_lookup; the generation is then
        # checked on the row found.
        sql = (
            f"SELECT b.type, b.generation, b.token, {_ROW_COLUMNS}, s.record_id, s.version, "
            f"s.generation, s.ct FROM blind_index b JOIN records r ON r.id = b.record_id "
            "JOIN users u ON u.username = r.clinician "
            "JOIN record_summaries s ON s.record_id = r.id "
            f"WHERE (b.type, b.generation, b.token) IN (VALUES {values}) "
            "AND r.status = 'completed'"
        )
        for r in conn.execute(sql, [part for item in chunk for part in item]):
            row = _row(r[3:14])
            if row.id == exclude or row.id in matches:
                continue
            token = IndexToken(r[0], int(r[1]), bytes(r[2]))
            matches[row.id] = TokenMatch(row, _summary(r[14:18]), token)
    return sorted(matches.values(), key=lambda m: (m.row.created, m.row.id))


def records_without_tokens(conn: Connection, generation: int) -> list[RecordRow]:
    sql = (
        f"SELECT {_ROW_COLUMNS} {_ROW_FROM} WHERE r.status = 'completed' "
        "AND r.answers_ct IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM blind_index b WHERE b.record_id = r.id AND b.generation = ?) "
        "ORDER BY r.created, r.id"
    )
    return [_row(r) for r in conn.execute(sql, (generation,))]


def delete_sealed_parts(conn: Connection, record_id: str) -> None:
    """Remove a draft's summary and tokens before the draft itself (the triggers keep those of
    a completed record). Its object wraps stay: they are append-only and open nothing once the
    answers are gone."""
    draft = "AND (SELECT status FROM records WHERE id = ?) = 'draft'"
    conn.execute(f"DELETE FROM record_summaries WHERE record_id = ? {draft}", (record_id,) * 2)
    conn.execute(f"DELETE FROM blind_index WHERE record_id = ? {draft}", (record_id,) * 2)


# ----- addenda, letters, follow-ups, reviews, household reviews ----------------------------


def _add_one_object(
    conn: Connection,
    table: str,
    who: str,
    record_id: str,
    person: str,
    created: str,
    body: SealedObject,
) -> int:
    """Append a row of `table` (addenda or reviews) whose narrative is one sealed object."""
    # The v1 narrative column is NOT NULL for addenda (an empty body, never the text); a
    # sealed review's verdict is NULL (migration 0008's CHECK).
    v1_column, v1_value = ("body", "''") if table == "addenda" else ("verdict", "NULL")
    cur = conn.execute(
        f"INSERT INTO {table} (record_id, {who}, created, {v1_column}, object_id, body_ct, "
        f"body_commit) VALUES (?,?,?,{v1_value},?,?,?)",
        (record_id, person, created, body.object_id, body.ct, body.commitment),
    )  # fmt: skip
    add_object_wraps(conn, body.wraps)
    return int(cur.lastrowid or 0)


def _one_object_rows(
    conn: Connection,
    table: str,
    who: str,
    kind: str,
    record_ids: Sequence[str],
    recipients: Sequence[str],
) -> list[tuple[int, str, str, str, SealedObject]]:
    """(id, record id, author or reviewer, created, sealed body) of `table`'s sealed rows of
    these records, by id (a chunk of record ids per query)."""
    rows: list[Sequence[Any]] = []
    for chunk in _chunks(list(dict.fromkeys(record_ids))):
        rows.extend(
            conn.execute(
                f"SELECT id, record_id, {who}, created, object_id, body_ct, body_commit "
                f"FROM {table} WHERE record_id IN ({_marks(chunk)}) AND body_ct IS NOT NULL",
                list(chunk),
            )
        )
    rows.sort(key=lambda r: int(r[0]))
    wraps = _wraps_of(conn, [(kind, str(r[4])) for r in rows], recipients)
    found = []
    for r in rows:
        body = _sealed(kind, r[4], r[5], r[6], wraps)
        assert body is not None  # body_ct IS NOT NULL
        found.append((int(r[0]), str(r[1]), str(r[2]), str(r[3]), body))
    return found


def add_sealed_addendum(
    conn: Connection, record_id: str, author: str, created: str, body: SealedObject
) -> int:
    return _add_one_object(conn, "addenda", "author", record_id, author, created, body)


def sealed_addenda(
    conn: Connection, record_id: str, recipients: Sequence[str]
) -> list[SealedAddendum]:
    return sealed_addenda_of(conn, [record_id], recipients).get(record_id, [])


def sealed_addenda_of(
    conn: Connection, record_ids: Sequence[str], recipients: Sequence[str]
) -> dict[str, list[SealedAddendum]]:
    """The sealed addenda of these records, oldest first, grouped by record id."""
    found: dict[str, list[SealedAddendum]] = {}
    for row in _one_object_rows(conn, "addenda", "author", "addendum", record_ids, recipients):
        found.setdefault(row[1], []).append(SealedAddendum(*row))
    return found


def add_sealed_letter(
    conn: Connection,
    record_id: str,
    created: str,
    signer: str,
    sha256: str,
    pdf: SealedObject,
    unsigned: SealedObject | None = None,
) -> int:
    cur = conn.execute(
        "INSERT INTO letters (record_id, created, signer, sha256, pdf, object_id, pdf_ct, "
        "pdf_commit, unsigned_object_id, unsigned_ct, unsigned_commit) "
        "VALUES (?,?,?,?,x'',?,?,?,?,?,?)",
        (
            record_id, created, signer, sha256, pdf.object_id, pdf.ct, pdf.commitment,
            unsigned and unsigned.object_id, unsigned and unsigned.ct,
            unsigned and unsigned.commitment,
        ),
    )  # fmt: skip
    add_object_wraps(conn, [*pdf.wraps, *(unsigned.wraps if unsigned else ())])
    return int(cur.lastrowid or 0)


def sealed_letters(
    conn: Connection, record_id: str, recipients: Sequence[str]
) -> list[SealedLetter]:
    rows = list(
        conn.execute(
            "SELECT id, record_id, created, signer, sha256, object_id, pdf_ct, pdf_commit, "
            "unsigned_object_id, unsigned_ct, unsigned_commit FROM letters "
            "WHERE record_id = ? AND pdf_ct IS NOT NULL ORDER BY id",
            (record_id,),
        )
    )
    objects = [("letter", str(r[5])) for r in rows]
    objects += [("letter-unsigned", str(r[8])) for r in rows if r[8] is not None]
    wraps = _wraps_of(conn, objects, recipients)
    found = []
    for r in rows:
        meta = LetterMeta(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]))
        pdf = _sealed("letter", r[5], r[6], r[7], wraps)
        assert pdf is not None
        found.append(SealedLetter(meta, pdf, _sealed("letter-unsigned", r[8], r[9], r[10], wraps)))
    return found


def add_sealed_followup(conn: Connection, fu: FollowUp, note: SealedObject | None) -> int:
    cur = conn.execute(
        "INSERT INTO followups (record_id, event, at, recorded_by, recorded_at, decision, note, "
        "details, object_id, note_ct, note_commit) VALUES (?,?,?,?,?,?,NULL,NULL,?,?,?)",
        (
            fu.record_id, fu.event, fu.at, fu.recorded_by, fu.recorded_at, fu.decision,
            note and note.object_id, note and note.ct, note and note.commitment,
        ),
    )  # fmt: skip
    if note is not None:
        add_object_wraps(conn, note.wraps)
    return int(cur.lastrowid or 0)


def sealed_followups(
    conn: Connection, record_ids: Sequence[str], recipients: Sequence[str]
) -> list[SealedFollowUp]:
    ids = list(dict.fromkeys(record_ids))
    rows: list[Sequence[Any]] = []
    for chunk in _chunks(ids):
        rows.extend(
            conn.execute(
                "SELECT id, record_id, event, at, recorded_by, recorded_at, decision, object_id, "
                f"note_ct, note_commit FROM followups WHERE record_id IN ({_marks(chunk)}) "
                "AND (object_id IS NOT NULL OR (note IS NULL AND details IS NULL))",
                list(chunk),
            )
        )
    rows.sort(key=lambda r: (str(r[3]), int(r[0])))
    wraps = _wraps_of(conn, [("followup-note", str(r[7])) for r in rows if r[7]], recipients)
    return [
        SealedFollowUp(
            int(r[0]),
            str(r[1]),
            str(r[2]),
            str(r[3]),
            str(r[4]),
            str(r[5]),
            r[6],
            _sealed("followup-note", r[7], r[8], r[9], wraps),
        )  # fmt: skip
        for r in rows
    ]


def add_sealed_review(
    conn: Connection, record_id: str, reviewer: str, created: str, body: SealedObject
) -> int:
    return _add_one_object(conn, "reviews", "reviewer", record_id, reviewer, created, body)


def sealed_reviews(
    conn: Connection, record_id: str, recipients: Sequence[str]
) -> list[SealedReview]:
    return sealed_reviews_of(conn, [record_id], recipients).get(record_id, [])


def sealed_reviews_of(
    conn: Connection, record_ids: Sequence[str], recipients: Sequence[str]
) -> dict[str, list[SealedReview]]:
    """The sealed lead reviews of these records, oldest first, grouped by record id."""
    found: dict[str, list[SealedReview]] = {}
    for row in _one_object_rows(conn, "reviews", "reviewer", "review", record_ids, recipients):
        found.setdefault(row[1], []).append(SealedReview(*row))
    return found


def add_sealed_household_review(
    conn: Connection,
    record_id: str,
    other_record_id: str,
    reviewer: str,
    created: str,
    generation: int,
    ct: bytes,
) -> int:
    cur = conn.execute(
        "INSERT INTO household_link_reviews (record_id, other_record_id, decision, reviewer, "
        "created, note, generation, review_ct) VALUES (?,?,NULL,?,?,NULL,?,?)",
        (record_id, other_record_id, reviewer, created, generation, ct),
    )
    return int(cur.lastrowid or 0)


def household_reviews(conn: Connection, record_ids: Sequence[str]) -> list[SealedHouseholdReview]:
    ids = list(dict.fromkeys(record_ids))
    found: list[SealedHouseholdReview] = []
    for chunk in _chunks(ids):
        found.extend(
            SealedHouseholdReview(
                int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), int(r[5]), bytes(r[6])
            )
            for r in conn.execute(
                "SELECT id, record_id, other_record_id, reviewer, created, generation, review_ct "
                f"FROM household_link_reviews WHERE record_id IN ({_marks(chunk)}) "
                "AND review_ct IS NOT NULL",
                list(chunk),
            )
        )
    return sorted(found, key=lambda h: h.id)
