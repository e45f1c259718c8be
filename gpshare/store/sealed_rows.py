"""One audit-detail shape for sealed writes, and the inventory of sealed rows both engines
return, so a verify can match every row with the event that wrote it (DESIGN §10.3 "What the
server cannot do undetected").

The shape, in the `details` of the audit event that records a sealed write:

    {"sealed": {"rows": [{"table": "records", "id": "SG-…", "version": 3,
                          "sha256": {"answers_ct": hex, "summary_ct": hex},
                          "commitment": {"answers_ct": hex},
                          "wraps": ["#lead@1", "drsmith@1"]}, …]}}

One entry per row the write made or changed. Records are named by their id and carry their
row version; the append-only object tables (addenda, letters, follow-ups, reviews) are named by
the object id of their ciphertext (unique within the table, made before the row exists) and
version 0. `sha256` holds the SHA-256 of each ciphertext column written, `commitment` the
object-key commitment of each column that has one (a record's C summary, under the clinical
key, has none). `wraps` says whom the object key was wrapped for; it is informative only (the
wraps live in their own append-only table). The M row MAC is not in the event: the services
cannot compute it (the PostgreSQL engine does, from the practice key, at the write) — instead
the engine reports, per row, whether its MAC verifies (`SealedRowState.mac_ok`).

The SQL below is plain enough to run on both engines unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RECORDS = "records"
ADDENDA = "addenda"
LETTERS = "letters"
FOLLOWUPS = "followups"
REVIEWS = "reviews"

# Ciphertext columns per table: column -> the column holding its object-key commitment.
_OBJECT_COLUMNS: dict[str, dict[str, str]] = {
    ADDENDA: {"body_ct": "body_commit"},
    LETTERS: {"pdf_ct": "pdf_commit", "unsigned_ct": "unsigned_commit"},
    FOLLOWUPS: {"note_ct": "note_commit"},
    REVIEWS: {"body_ct": "body_commit"},
}
OBJECT_TABLES = tuple(_OBJECT_COLUMNS)
SUMMARY_COLUMN = "summary_ct"  # a record's C summary (its own table, keyed by the record id)


def digest(ct: bytes) -> str:
    """The hex SHA-256 of a ciphertext."""
    return hashlib.sha256(ct).hexdigest()


@dataclass(frozen=True)
class SealedRowState:
    """One sealed row as an event names it, or as the store holds it.

    `mac_ok` is the engine's check of the row's M MAC (always True on the embedded engine,
    whose whole file is authenticated instead); events leave it True.
    """

    table: str
    id: str
    version: int
    sha256: Mapping[str, str]
    commitment: Mapping[str, str] = field(default_factory=dict)
    mac_ok: bool = True

    @property
    def key(self) -> tuple[str, str]:
        """(table, id): what names this row across events and the store."""
        return (self.table, self.id)

    def label(self) -> str:
        """How a finding names the row, e.g. "records SG-ABCD-1234"."""
        return f"{self.table} {self.id}"


def row_entry(
    table: str,
    row_id: str,
    version: int,
    cts: Mapping[str, bytes | None],
    commitments: Mapping[str, bytes],
    wraps: Iterable[str] = (),
) -> dict[str, Any]:
    """One entry of the shape (ciphertexts that are None are left out)."""
    return {
        "table": table,
        "id": row_id,
        "version": version,
        "sha256": {col: digest(ct) for col, ct in cts.items() if ct is not None},
        "commitment": {col: c.hex() for col, c in commitments.items()},
        "wraps": sorted(wraps),
    }


def sealed_details(*entries: Mapping[str, Any]) -> dict[str, Any]:
    """The `details` fragment a sealed write's audit event carries."""
    return {"sealed": {"rows": [dict(e) for e in entries]}}


def named_rows(details: Mapping[str, Any]) -> list[SealedRowState]:
    """The rows an event's details name in this shape ([] for any other, older shape: the
    chain still seals those details, and verify reports their rows as unnamed)."""
    sealed = details.get("sealed")
    if not isinstance(sealed, Mapping) or not isinstance(sealed.get("rows"), list):
        return []
    found = []
    for entry in sealed["rows"]:
        try:
            found.append(
                SealedRowState(
                    str(entry["table"]),
                    str(entry["id"]),
                    int(entry["version"]),
                    {str(k): str(v) for k, v in dict(entry["sha256"]).items()},
                    {str(k): str(v) for k, v in dict(entry.get("commitment") or {}).items()},
                )
            )
        except (KeyError, TypeError, ValueError):
            continue  # a malformed entry names nothing; the chain still seals it
    return found


# ----- the inventory (run by each engine on its own connection) --------------------------------

Query = Callable[[str], Iterable[Sequence[Any]]]


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def inventory(query: Query) -> list[SealedRowState]:
    """Every sealed row the database holds, with the SHA-256 of each ciphertext and each
    commitment (mac_ok True: the engine applies its own MAC check on top)."""
    found = []
    for r in query(
        "SELECT r.id, r.version, r.answers_ct, r.answers_commit, s.ct FROM records r "
        "LEFT JOIN record_summaries s ON s.record_id = r.id "
        "WHERE r.answers_ct IS NOT NULL ORDER BY r.id"
    ):
        cts = {"answers_ct": _bytes(r[2]), SUMMARY_COLUMN: _bytes(r[4])}
        found.append(
            SealedRowState(
                RECORDS,
                str(r[0]),
                int(r[1]),
                {c: digest(ct) for c, ct in cts.items() if ct is not None},
                {"answers_ct": bytes(r[3]).hex()} if r[3] is not None else {},
            )
        )
    for table, columns in _OBJECT_COLUMNS.items():
        # A letter's unsigned copy shares its row: the row is named by the signed copy's id.
        cols = ", ".join(f"{c}, {m}" for c, m in columns.items())
        for r in query(
            f"SELECT object_id, {cols} FROM {table} WHERE object_id IS NOT NULL ORDER BY object_id"
        ):
            sha, commits = {}, {}
            for i, col in enumerate(columns):
                ct, commit = r[1 + 2 * i], r[2 + 2 * i]
                if ct is not None:
                    sha[col] = digest(bytes(ct))
                if commit is not None:
                    commits[col] = bytes(commit).hex()
            found.append(SealedRowState(table, str(r[0]), 0, sha, commits))
    return found
