"""What a store cannot change undetected (DESIGN §10.3), engine-neutral: every check here reads
through the storage port, so it runs the same on the embedded engine and on PostgreSQL.

- Rows against events: after the chain, every sealed row an event names exists and matches
  (its M MAC, the SHA-256 of each ciphertext, each commitment and its version), and no sealed
  row exists without an event naming it (gpshare/store/sealed_rows.py is the shape).
- Witnesses: each `unlock` event records the (seq, hash, restore epoch) this workstation had
  seen before; every witness must lie on the chain, unless a restore with a higher epoch came
  between (a server that showed two workstations different histories is exposed).
- The head a workstation saw: at connect, the chain must hold that hash at that seq, or a
  restore with a higher epoch must be on the chain; otherwise the connect stops with an alarm
  naming both heads.

Each finding names the check responsible, the row (table and id) or witness, and the event seq.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gpshare.filters import AuditFilter
from gpshare.records import AuditEvent
from gpshare.store.anchor import Anchor
from gpshare.store.audit import ChainReport
from gpshare.store.port import AuditEntry, AuditHead, ReadTx, Store
from gpshare.store.sealed_rows import SealedRowState, named_rows

RESTORED = "backup_restored"
# The setting that counts restores of a practice server (an M row: MACed like any other).
RESTORE_EPOCH = "restore_epoch"
_BATCH = 5000


@dataclass(frozen=True)
class Finding:
    """One thing a check found wrong: `check` is "rows" or "witness"; `table`/`row` name the
    row (None for a witness), `seq` the event involved (None for a row no event names)."""

    check: str
    message: str
    table: str | None = None
    row: str | None = None
    seq: int | None = None

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class IntegrityReport:
    """The chain's report, then what the row and witness checks found."""

    chain: ChainReport
    findings: list[Finding] = field(default_factory=list)
    rows: int = 0
    witnesses: int = 0

    @property
    def ok(self) -> bool:
        """True when the chain is intact and no check found anything."""
        return self.chain.ok and not self.findings

    def summary(self) -> str:
        """Plain lines for the UI and CLI: the chain, then each finding."""
        lines = [self.chain.summary()]
        if not self.findings:
            lines.append(
                f"Every sealed row matches its audit event ({self.rows} rows); "
                f"every workstation witness lies on the chain ({self.witnesses})."
            )
        lines += [str(f) for f in self.findings]
        return "\n".join(lines)


def all_events(tx: ReadTx) -> list[AuditEvent]:
    """Every event, oldest first (read in batches)."""
    found: list[AuditEvent] = []
    while True:
        batch = tx.audit_events_after(found[-1].seq if found else 0, _BATCH)
        found += batch
        if len(batch) < _BATCH:
            return found


# ----- rows against events ----------------------------------------------------------------------


@dataclass
class _Expected:
    version: int
    seq: int
    sha256: dict[str, tuple[str, int]]  # column -> (hex, seq of the event that wrote it)
    commitment: dict[str, tuple[str, int]]


def _expected(events: Iterable[AuditEvent]) -> dict[tuple[str, str], _Expected]:
    """Per row, what the newest event naming it says (per column: the newest event that wrote
    that column, since a save may leave a column as it was)."""
    found: dict[tuple[str, str], _Expected] = {}
    for event in events:
        for named in named_rows(event.details):
            have = found.setdefault(named.key, _Expected(named.version, event.seq, {}, {}))
            have.version, have.seq = named.version, event.seq
            have.sha256.update({c: (h, event.seq) for c, h in named.sha256.items()})
            have.commitment.update({c: (h, event.seq) for c, h in named.commitment.items()})
    return found


def _compare(row: SealedRowState, want: _Expected) -> list[Finding]:
    found = []

    def add(message: str, seq: int) -> None:
        found.append(Finding("rows", message, row.table, row.id, seq))

    if not row.mac_ok:
        add(
            f"Row {row.label()}: its M row MAC does not verify (changed outside gpshare); "
            f"last written by event {want.seq}.",
            want.seq,
        )
    if row.version != want.version:
        add(
            f"Row {row.label()}: stored at version {row.version}, but event {want.seq} wrote "
            f"version {want.version}.",
            want.seq,
        )
    for kind, stored, wanted in (
        ("ciphertext", row.sha256, want.sha256),
        ("commitment", row.commitment, want.commitment),
    ):
        for column in sorted(set(stored) | set(wanted)):
            value, seq = wanted.get(column, (None, want.seq))
            if stored.get(column) != value:
                what = "is missing" if column not in stored else "differs from"
                add(
                    f"Row {row.label()}: the {kind} of {column} {what} what event {seq} recorded.",
                    seq,
                )
    return found


def row_findings(
    events: Iterable[AuditEvent], stored: Iterable[SealedRowState]
) -> tuple[list[Finding], int]:
    """(findings, rows checked): every row an event names against the store, and every stored
    sealed row against the events."""
    expected = _expected(events)
    have = {row.key: row for row in stored}
    findings = []
    for key, want in expected.items():
        row = have.get(key)
        if row is None:
            findings.append(
                Finding(
                    "rows",
                    f"Row {key[0]} {key[1]}: named by event {want.seq} but missing from the "
                    "database.",
                    key[0],
                    key[1],
                    want.seq,
                )
            )
        else:
            findings += _compare(row, want)
    for key, row in have.items():
        if key not in expected:
            mac = "" if row.mac_ok else " (and its M row MAC does not verify)"
            findings.append(
                Finding(
                    "rows",
                    f"Row {row.label()}: no audit event names it{mac}: it was added outside "
                    "gpshare.",
                    row.table,
                    row.id,
                )
            )
    return findings, len(have)


# ----- witnesses and the head a workstation saw --------------------------------------------------


def witness(seen: Anchor | None) -> dict[str, Any]:
    """The details an `unlock` event carries: the (seq, hash, restore epoch) this workstation
    had seen before ({} when it had seen nothing)."""
    if seen is None:
        return {}
    return {"witness": {"seq": seen.seq, "hash": seen.hash, "epoch": seen.restores}}


def _epoch(details: Mapping[str, Any]) -> int:
    try:
        return int(details.get("epoch", 0))
    except (TypeError, ValueError):
        return 0


def witness_findings(
    events: Iterable[AuditEvent], hash_at: Callable[[int], str | None]
) -> tuple[list[Finding], int]:
    """(findings, witnesses checked): each unlock's witness lies on the chain, or a restore
    with a higher epoch than the witness's came before that unlock."""
    findings, checked, restored = [], 0, 0
    for event in events:
        if event.action == RESTORED:
            restored = max(restored, _epoch(event.details))
            continue
        seen = event.details.get("witness")  # unlock events (any way of unlocking)
        if not isinstance(seen, Mapping):
            continue
        checked += 1
        try:
            seq, digest, epoch = int(seen["seq"]), str(seen["hash"]), _epoch(seen)
        except (KeyError, TypeError, ValueError):
            findings.append(
                Finding(
                    "witness",
                    f"Unlock event {event.seq}: its witness is unreadable.",
                    seq=event.seq,
                )
            )
            continue
        if seq < event.seq and hash_at(seq) == digest:
            continue
        if restored > epoch:
            continue  # a restore since explains the older history (it recorded the loss)
        findings.append(
            Finding(
                "witness",
                f"Unlock event {event.seq} by {event.actor}: the workstation had seen event "
                f"{seq} sealed {digest[:12]}…, which is not on this chain: the server showed "
                "it a different history (a fork or a rollback).",
                seq=event.seq,
            )
        )
    return findings, checked


def verify(tx: ReadTx, head: tuple[int, str] | None = None) -> IntegrityReport:
    """The chain (against `head` when given), then rows against events and witnesses."""
    chain = tx.verify_audit(head)
    events = all_events(tx)
    rows, checked = row_findings(events, tx.sealed_rows())
    witnesses, seen = witness_findings(events, tx.audit_hash_at)
    return IntegrityReport(chain, rows + witnesses, checked, seen)


@dataclass(frozen=True)
class HeadCheck:
    """The result of comparing the head a workstation saw with the chain: `alarm` (stop) or
    `restore` (the restore event that explains an older history: show its loss once)."""

    alarm: str | None = None
    restore: AuditEvent | None = None


def check_seen(tx: ReadTx, seen: Anchor | None, epoch: int) -> HeadCheck:
    """Does the chain hold the head this workstation saw (`seen`)? A lower or different head
    is accepted only with a higher restore epoch (`epoch`, the store's MACed counter) and the
    `backup_restored` event that recorded it; otherwise an alarm naming both heads."""
    if seen is None or tx.audit_hash_at(seen.seq) == seen.hash:
        return HeadCheck()
    if epoch > seen.restores:
        for event in tx.audit_events(AuditFilter(action=RESTORED), limit=None):
            if _epoch(event.details) == epoch:
                return HeadCheck(restore=event)
    now = tx.audit_head()
    return HeadCheck(
        alarm=(
            f"ROLLBACK OR FORK ALARM: this workstation has seen audit event {seen.seq} sealed "
            f"{seen.hash[:12]}…, but the server's chain does not hold it (its head is event "
            f"{now.seq} sealed {now.digest[:12]}…) and no restore explains it. Nothing has been "
            "changed. Do not use the server: tell the practice administrator and the "
            "safeguarding lead."
        )
    )


# ----- restore as an epoch (practice server) ------------------------------------------------------


def restore_epoch(settings: Mapping[str, str]) -> int:
    """The store's restore epoch (0 before any restore), from its settings."""
    try:
        return int(settings.get(RESTORE_EPOCH, "0"))
    except ValueError:
        return 0


def record_restore(store: Store, actor: str, old: AuditHead, old_epoch: int) -> dict[str, Any]:
    """After a restore from a backup: append `backup_restored` (the old head, the restored
    head, how many events were lost) and raise the restore epoch above both the old and the
    restored one, in one transaction; returns the event's details."""
    with store.read() as tx:
        restored = tx.audit_head()
        epoch = max(old_epoch, restore_epoch(tx.get_settings())) + 1
    details = {
        "old_head": {"seq": old.seq, "hash": old.digest},
        "restored_head": {"seq": restored.seq, "hash": restored.digest},
        "events_lost": max(old.seq - restored.seq, 0),
        "epoch": epoch,
    }
    with store.write(AuditEntry(actor, RESTORED, None, details)) as tx:
        tx.put_settings({RESTORE_EPOCH: str(epoch)})
    return details


def loss_notice(event: AuditEvent) -> str:
    """What a user is told once after a restore: when, and how many events were lost."""
    lost = event.details.get("events_lost", "some")
    return (
        f"The practice server was restored from a backup on {event.at[:16].replace('T', ' ')} "
        f"by {event.actor}: {lost} audit events recorded after that backup were lost. Work "
        "saved in that time (drafts, completions, letters) may need to be entered again."
    )


def on_connect(store: Store, seen: Anchor | None) -> HeadCheck:
    """The check a workstation makes when it connects to a practice server, before its first
    append (the §7/D1 rule): the head it saw (`seen`, its sealed anchor) against the chain and
    the server's restore epoch."""
    with store.read() as tx:
        return check_seen(tx, seen, restore_epoch(tx.get_settings()))


def seen_now(store: Store) -> Anchor:
    """What a workstation remembers after a session: the server's head and restore epoch."""
    with store.read() as tx:
        head = tx.audit_head()
        return Anchor(head.seq, head.digest, restore_epoch(tx.get_settings()))
