"""Upgrading a version-1 vault to version 2 in place (docs/vault-v2.md §4, decisions D3–D6).

The practice key is the v1 database key, so every slot keeps opening the vault. What changes
is what that key reaches: records.db is rebuilt as a fresh file under HKDF(practice,
"sqlcipher") with class M in the clear and C/N sealed by the same codec the v2 writers use
(gpshare/services/_sealing.py), every object key wrapped for the lead key g1. Sequence:
1. journal `backup`: an encrypted snapshot, verified (cipher integrity and audit chain);
2. clinical key g1, lead key g1 and a new break-glass code (both keys wrapped for it);
3. journal `building`: `.records.db.migrating` — users, settings and the audit chain copied
   row for row; a new practice CA for the migrating admin (D6; the old certificate stays a
   trusted issuer and each practice-issued signing certificate is re-issued for its same
   public key); every record, addendum, letter, follow-up note, review and household review
   sealed; referral states without names; each snapshot in backups/ re-encrypted under its
   own legacy-backup key wrapped for the lead and break-glass keys (D3); `vault_migrated`;
4. verify: rows per table, every record reopened and compared with the v1 one (which checks
   every commitment), the chain from genesis with the v1 key up to `vault_migrated`;
5. journal `swapping`: the new files in, the v1 database deleted.
A v1 lead present at the migration (typing their password) is appointed as `init --lead`
does (D5); otherwise the first lead is appointed by the break-glass ceremony.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from gpshare import access
from gpshare.clock import Clock, SystemClock
from gpshare.errors import (
    KeyNotHeld,
    NotFound,
    PermissionDenied,
    StoreError,
    UnknownUserError,
    ValidationFailed,
    WrongPasswordError,
)
from gpshare.records import Record, User
from gpshare.services import _sealing, backups, practice_ca
from gpshare.services._sealed_objects import row_of
from gpshare.services.backups import BreakGlassPresent, LeadPresent
from gpshare.services.keys import grant, words
from gpshare.services.record_keys import (
    BREAKGLASS_RECIPIENT,
    LEAD_RECIPIENT,
    LEGACY_BACKUP,
    Recipient,
)
from gpshare.services.session import Session
from gpshare.services.vaults import (
    _audit_pending,
    _open_checked,
    _open_vault,
    _role_wrap,
    open_session,
)
from gpshare.store import anchor, audit, backup, sealed_rows
from gpshare.store import migrate_v2 as files
from gpshare.store.keys.binding import ClinicalKey, ObjectKey, PracticeKey
from gpshare.store.keys.bundle import UserKeys, raw_public, seal_bundle
from gpshare.store.keys.directory import (
    LeadKeyEntry,
    SignedEntry,
    UserEntry,
    sign_entry,
    sign_rotation,
)
from gpshare.store.keys.lead import LeadKey
from gpshare.store.keys.wraps import WrapBinding, commitment, unwrap_object_key, wrap_key
from gpshare.store.port import AuditEntry, AuditHead, ObjectWrap, StoredBundle, WriteTx
from gpshare.store.practice_keys import PracticeKeys
from gpshare.store.vault import KdfParams, Vault

# LEGACY_BACKUP (record_keys): object kind of a v1 snapshot's rekey key (decision D3)
# progress(stage, done, total): the stages, in order, for a progress bar
STAGES = ("backup", "records", "backups", "verify", "swap")
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class LeadAtMigration:
    """A v1 safeguarding lead present at the migration, typing their own password (D5)."""

    username: str
    password: str


@dataclass(frozen=True)
class Migrated:
    """What the migration did; `breakglass_code` is shown once and never stored in clear."""

    breakglass_code: str
    backup: Path
    counts: dict[str, int]
    legacy_backups: list[str]
    lead: str | None


class _MigrationKeys:
    """The RecordKeys of the migration (gpshare/services/record_keys.py): clinical key g1 for
    summaries and tokens, every object key wrapped for the lead key g1 only (no user holds a
    key yet), and the lead key to reopen what was sealed when verifying."""

    def __init__(self, vault_id: str, clinical: ClinicalKey, lead: LeadKey) -> None:
        self._vault_id = vault_id
        self._clinical = clinical
        self._lead = lead
        public = lead.encryption(vault_id).public_key()
        self._recipient = Recipient(LEAD_RECIPIENT, lead.generation, public)

    @property
    def vault_id(self) -> str:
        return self._vault_id

    def clinical(self) -> ClinicalKey:
        return self._clinical

    def clinical_generations(self) -> Sequence[ClinicalKey]:
        return [self._clinical]

    def recipients(self, author: str) -> Sequence[Recipient]:
        return [self._recipient]

    def open_object_key(
        self,
        object_kind: str,
        object_id: str,
        commitment: bytes,
        wraps: Sequence[tuple[str, int, bytes]],
    ) -> ObjectKey:
        for recipient, generation, blob in wraps:
            if recipient == LEAD_RECIPIENT and generation == self._lead.generation:
                binding = WrapBinding.for_object(
                    self._vault_id, object_kind, object_id, recipient, generation
                )
                private = self._lead.encryption(self._vault_id)
                return unwrap_object_key(blob, private, binding, commitment)
        raise KeyNotHeld(f"the migrated {object_kind} {object_id} has no lead wrap")


def _refuse(problem: str) -> ValidationFailed:
    return ValidationFailed(problem, [{"field": "migrate", "message": problem}])


def _member(
    user: User, password: str, pin: bytes | None, vault_id: str, params: KdfParams, now: str
) -> tuple[StoredBundle, UserEntry]:
    """A migrating user's bundle (sealed under their password) and unsigned directory entry."""
    own = UserKeys.generate(pin, lead=user.role == "lead")
    sealed = seal_bundle(own, password, vault_id, user.username, 1, params)
    access = raw_public(own.lead_access) if own.lead_access is not None else None
    entry = UserEntry(
        vault_id, user.username, user.role, raw_public(own.encryption), 1, True, access
    )
    return StoredBundle(user.username, "active", sealed, now), entry


def _check_lead(session: Session, lead: LeadAtMigration) -> User:
    """D5: the lead typed their own password, and is an active lead of this vault."""
    with session._read() as tx:
        user = tx.get_user(lead.username)
    if user is None or not user.active or user.role != "lead":
        raise _refuse(
            f"'{lead.username}' is not an active safeguarding lead of this vault: the lead "
            "appointed by the upgrade must already be a lead here (or leave the lead out: the "
            "break-glass ceremony appoints one later)."
        )
    if session.vault.check_password(lead.username, lead.password) != session.db_key:
        raise _refuse(f"The password typed for '{lead.username}' does not open this vault.")
    return user


def _legacy_wraps(
    vault_id: str, name: str, key: ObjectKey, recipients: Sequence[Recipient], created: str
) -> list[ObjectWrap]:
    """D3: a snapshot's legacy-backup key wrapped for the lead key g1 and the break-glass key."""
    out = []
    for r in recipients:
        binding = WrapBinding.for_object(vault_id, LEGACY_BACKUP, name, r.id, r.generation)
        blob = wrap_key(key, r.public_key, binding)
        out.append(ObjectWrap(LEGACY_BACKUP, name, r.id, r.generation, blob, created))
    return out


def _seal_record(tx: WriteTx, keys: _MigrationKeys, v1: Session, record: Record) -> None:
    """One record and its append-only objects through the v2 codec (the writers' own path)."""
    draft = record if record.status == "draft" else _as_draft(record)
    write, key = _sealing.seal_record(keys, draft, 0)
    tx.insert_sealed_record(write)
    if record.status != "draft":
        final, _ = _sealing.seal_record(keys, record, write.row.version, key)
        tx.complete_sealed_record(final)
    row = row_of(record)
    with v1._read() as old:
        addenda = old.addenda(record.id)
        letters = [
            (meta, old.letter_pdf(meta.id), old.letter_unsigned_pdf(meta.id))
            for meta in old.letters(record.id)
        ]
        followups = old.followups([record.id])
        reviews = old.reviews(record.id)
    for a in addenda:
        tx.add_sealed_addendum(
            record.id, a.author, a.created, _sealing.seal_addendum(keys, row, a.created, a.body)
        )
    for meta, found, unsigned in letters:
        if found is None:
            raise _refuse(f"Letter {meta.id} of record {record.id} has no stored PDF.")
        pdf, kept = _sealing.seal_letter(keys, row, meta.created, found[1], unsigned)
        tx.add_sealed_letter(record.id, meta.created, meta.signer, meta.sha256, pdf, kept)
    for fu in followups:
        tx.add_sealed_followup(fu, _sealing.seal_followup_note(keys, row, fu))
    for review in reviews:
        body = _sealing.seal_review(keys, row, review)
        tx.add_sealed_review(record.id, review.reviewer, review.created, body)


def _as_draft(record: Record) -> Record:
    from dataclasses import replace

    return replace(record, status="draft", completed=None)


def _same(before: Record, after: Record) -> bool:
    """Whether the reopened record says what the v1 one said (M, C and N)."""
    return (
        before.answers == after.answers
        and (before.outcome or None) == (after.outcome or None)
        and (before.status, before.clinician, before.completed, before.created)
        == (after.status, after.clinician, after.completed, after.created)
        and before.child == after.child
    )


def migrate_vault(
    folder: Path,
    admin_username: str,
    admin_password: str,
    *,
    lead: LeadAtMigration | None = None,
    confirm_code: Callable[[str], None] | None = None,
    progress: Progress | None = None,
    clock: Clock | None = None,
) -> Migrated:
    """Upgrade the version-1 vault in `folder` to version 2 (see the module docstring).

    `confirm_code(code)` is called with the new break-glass code before anything is built (it
    shows the code and has it typed back; raising stops the upgrade, nothing changed). Any
    failure before the swap leaves the v1 vault as it was; a crash is undone or finished at
    the next open (`finish_interrupted_migration`)."""
    clock = clock or SystemClock()
    folder = Path(folder)
    report = progress or (lambda stage, done, total: None)
    finish_interrupted_migration(folder)
    if _open_vault(folder).format_version >= 2:
        raise _refuse("This vault is already version 2: there is nothing to upgrade.")
    v1 = open_session(folder, admin_username, admin_password, clock)
    vault = v1.vault
    try:
        if v1.user.role != "admin":
            v1.audit("access_denied", None, {"action": "migrate_v2"})
            raise PermissionDenied(
                "Only a practice administrator can upgrade the vault: sign in as one."
            )
        lead_user = _check_lead(v1, lead) if lead is not None else None
        # From here the v1 session keeps the vault lock until the swap is done.
        v1._owns_vault_lock = False
        try:
            return _migrate(v1, admin_password, lead, lead_user, confirm_code, report, clock)
        finally:
            v1.close()
            vault.lock.release()
    except BaseException:
        if v1.is_open:
            v1.close()
        raise


def needs_upgrade(folder: Path) -> bool:
    """Whether `folder` holds a readable version-1 vault (the unlock screen's offer)."""
    try:
        return Vault.open(Path(folder)).format_version < 2  # reads the header only
    except (StoreError, OSError):
        return False


def finish_interrupted_migration(folder: Path) -> str | None:
    """Finish (after `swapping`) or undo (before) a migration that was killed."""
    return files.finish_interrupted_migration(Path(folder))


def _migrate(
    v1: Session,
    admin_password: str,
    lead: LeadAtMigration | None,
    lead_user: User | None,
    confirm_code: Callable[[str], None] | None,
    report: Progress,
    clock: Clock,
) -> Migrated:
    from gpshare import signing

    vault, folder, db_key = v1.vault, v1.vault.folder, v1.db_key
    vault_id = vault.vault_id
    now = v1.now_iso()
    old_head = vault.audit_head()
    # 1. The backup, verified, before anything else.
    files.write_journal(folder, "backup")
    try:
        report("backup", 0, 1)
        snapshot = v1.store.create_backup(clock.now(), keep=backup.DEFAULT_KEEP + 1)
        backup.check_backup(snapshot, db_key)
        report("backup", 1, 1)
        # 2. The role keys and the break-glass code.
        practice = PracticeKeys(PracticeKey(bytes(db_key)), vault_id)
        clinical = ClinicalKey.generate_generation(1)
        lead_key = LeadKey.generate_generation(1)
        staged, code = vault.staged_v2()
        if confirm_code is not None:
            confirm_code(code)
        files.write_journal(folder, "building")
        migrated = _build(
            v1, practice, staged, clinical, lead_key, admin_password, lead, lead_user,
            snapshot, old_head, now, report, signing,
        )  # fmt: skip
    except BaseException as exc:
        files.undo(folder)
        if isinstance(exc, OSError):
            raise StoreError(
                f"The upgrade stopped ({exc.strerror or exc}); the vault was left as it was "
                "(version 1) and still opens. Free some disk space and try again."
            ) from exc
        raise
    # 5. Swap: the journal says `swapping` first, so a crash from here is rolled forward.
    report("swap", 0, 1)
    v1.close()  # the v1 file must be closed (and its WAL checkpointed) before it goes
    files.swap(folder)
    head = staged.audit_head()
    anchor.write(vault_id, practice, head[0], head[1], staged.restore_number())
    report("swap", 1, 1)
    return Migrated(
        code, snapshot, migrated[0], migrated[1], lead_user.username if lead_user else None
    )


def _build(
    v1: Session,
    practice: PracticeKeys,
    staged: Any,
    clinical: ClinicalKey,
    lead_key: LeadKey,
    admin_password: str,
    lead: LeadAtMigration | None,
    lead_user: User | None,
    snapshot: Path,
    old_head: tuple[int, str],
    now: str,
    report: Progress,
    signing: Any,
) -> tuple[dict[str, int], list[str]]:
    """Steps 3 and 4: fill and verify `.records.db.migrating`, rekey the snapshots, stage the
    v2 header; returns (rows per table, rekeyed snapshot names)."""
    vault, folder = v1.vault, v1.vault.folder
    vault_id = vault.vault_id
    keys = _MigrationKeys(vault_id, clinical, lead_key)
    params = KdfParams.from_dict(vault.header["kdf_default"])
    with v1._read() as tx:
        old_ca = tx.get_practice_ca()
        admin = tx.get_user(v1.user.username)
        trusted = json.loads(tx.get_settings().get("trusted_issuers") or "[]")
    if old_ca is None or admin is None:
        raise NotFound("This vault has no practice certificate authority to replace.")
    # D6: a new CA, sealed for the migrating admin only; the old certificate verifies old letters.
    ca = signing.create_practice_ca(vault.practice_name, v1.clock.now())
    ca_pair = signing.KeyAndCert(ca.key_pem, ca.cert_pem)
    lead_signing = lead_key.signing(vault_id)
    pin = raw_public(lead_signing) if lead_user is not None else None
    admin_bundle, admin_entry = _member(admin, admin_password, pin, vault_id, params, now)
    admin_public = X25519PublicKey.from_public_bytes(admin_entry.public_key)
    nonce, wrapped, ca_wraps = practice_ca.seal_ca(
        vault_id, ca.key_pem, [Recipient(admin.username, 1, admin_public)], now
    )
    target = files.MigrationTarget(folder, practice, bytes(v1.db_key))
    try:
        certificates = {
            row_id: signing.reissue_certificate(ca_pair, pem.encode(), v1.clock.now()).decode()
            for row_id, source, pem in target.signing_certificates()
            if source == "issued" and signing.issued_by(pem.encode(), old_ca.cert_pem)
        }
        target.copy_plain(certificates)
        breakglass = Recipient(
            BREAKGLASS_RECIPIENT,
            1,
            X25519PublicKey.from_public_bytes(staged.breakglass_public_key()),
        )
        lead_recipient = keys.recipients("")[0]
        names = files.snapshot_names(vault, bytes(v1.db_key))
        legacy = {name: ObjectKey.generate() for name in names}
        with target.write() as tx:
            tx.put_practice_ca(ca.cert_pem, nonce, wrapped, now)
            tx.add_object_wraps(ca_wraps)
            old_pem = old_ca.cert_pem.decode("ascii")
            tx.put_settings({"trusted_issuers": json.dumps([*trusted, old_pem])})
            tx.add_lead_rotation(sign_rotation(lead_signing, raw_public(lead_signing), vault_id, 1))
            lead_public = raw_public(lead_key.encryption(vault_id))
            tx.add_directory_entry(
                sign_entry(LeadKeyEntry(vault_id, 1, lead_public), lead_signing), now
            )
            tx.add_role_key_wraps(
                [_role_wrap(clinical, breakglass_raw(breakglass), vault_id),
                 _role_wrap(lead_key, breakglass_raw(breakglass), vault_id)]
            )  # fmt: skip
            tx.put_bundle(admin_bundle)
            for name, key in legacy.items():
                tx.add_object_wraps(
                    _legacy_wraps(vault_id, name, key, [lead_recipient, breakglass], now)
                )
            if lead_user is None or lead is None:
                tx.add_directory_entry(SignedEntry(admin_entry, None), now)
            else:
                lead_bundle, lead_entry = _member(
                    lead_user, lead.password, pin, vault_id, params, now
                )
                tx.put_bundle(lead_bundle)
                grant(tx, vault_id, lead_key, admin_entry, [], [], now)
                grant(tx, vault_id, lead_key, lead_entry, [clinical], [lead_key], now)
        # Records and their objects, one transaction each.
        ids = target.record_ids()
        originals: dict[str, Record] = {}
        for n, record_id in enumerate(ids):
            with v1._read() as old:
                record = old.get_record(record_id)
            if record is None:
                raise NotFound(f"Record {record_id} could not be read from the version-1 vault.")
            originals[record_id] = record
            with target.write() as tx:
                _seal_record(tx, keys, v1, record)
            report("records", n + 1, len(ids))
        with target.write() as tx:
            for r in target.household_reviews():
                generation, ct = _sealing.seal_household_review(
                    keys, r.record_id, r.other_record_id, r.decision, r.note
                )
                tx.add_sealed_household_review(
                    r.record_id, r.other_record_id, r.reviewer, r.created, generation, ct
                )
        target.copy_referral_states()
        # D3: every v1 snapshot re-encrypted under its own legacy-backup key.
        report("backups", 0, len(names))
        rekeyed = files.rekey_snapshots(
            vault, bytes(v1.db_key), {n: k.reveal() for n, k in legacy.items()}
        )
        report("backups", len(names), len(names))
        counts = target.counts()
        details = {
            "from_format": 1,
            "to_format": 2,
            "old_head": {"seq": old_head[0], "hash": old_head[1]},
            "backup": snapshot.name,
            "counts": counts,
            "legacy_backups": {n: commitment(vault_id, n, k).hex() for n, k in legacy.items()},
            "practice_ca_sha256": hashlib.sha256(ca.cert_pem).hexdigest(),
            "admin_fingerprint": words(admin_entry.public_key, vault_id),
            "lead": lead_user.username if lead_user else None,
        }
        migrated = target.append(
            AuditEntry(v1.user.username, audit.MIGRATED_ACTION, None, details, v1.clock.now())
        )
        head, named = _name_sealed_rows(target, v1.user.username, v1.clock.now(), migrated)
        # 4. Verify before anything is swapped.
        report("verify", 0, len(ids))
        _verify(target, keys, originals, practice, (head.seq, head.digest), report, named)
        target.finish()
    except BaseException:
        target.close()
        raise
    staged.header["audit_head"] = {"seq": head.seq, "hash": head.digest}
    staged.header["migrated"] = {"at": now, "seq": migrated.seq, "old_head_seq": old_head[0]}
    staged.seal(practice)
    files.stage_header(folder, staged.header_bytes())
    return counts, rekeyed


def breakglass_raw(recipient: Recipient) -> bytes:
    """The raw X25519 public key of a recipient (the break-glass slot's)."""
    return recipient.public_key.public_bytes_raw()


ROWS_MIGRATED_ACTION = "rows_migrated"
# Rows named per `rows_migrated` event: small enough for the audit tab, few enough events.
ROWS_PER_EVENT = 500


def _name_sealed_rows(
    target: files.MigrationTarget, actor: str, at: datetime, head: AuditHead
) -> tuple[AuditHead, int]:
    """After `vault_migrated`, events naming every row the migration sealed in the one shape
    of gpshare/store/sealed_rows.py, so the rows-against-events verify (DESIGN §10.3) holds
    on an upgraded vault as on one written by the v2 writers; the head and how many events."""
    with target.write() as tx:
        rows = tx.sealed_rows()
    events = 0
    for first in range(0, len(rows), ROWS_PER_EVENT):
        entries = [
            {
                "table": r.table,
                "id": r.id,
                "version": r.version,
                "sha256": dict(r.sha256),
                "commitment": dict(r.commitment),
                "wraps": [],  # informative only; the wraps are in their own table
            }
            for r in rows[first : first + ROWS_PER_EVENT]
        ]
        head = target.append(
            AuditEntry(actor, ROWS_MIGRATED_ACTION, None, sealed_rows.sealed_details(*entries), at)
        )
        events += 1
    return head, events


def _verify(
    target: files.MigrationTarget,
    keys: _MigrationKeys,
    originals: dict[str, Record],
    practice: PracticeKeys,
    head: tuple[int, str],
    report: Progress,
    named: int = 0,
) -> None:
    """Counts per table, every record reopened (answers, outcome, child; every commitment
    checked by the unwrap), append-only ids unchanged, the chain continuous. `named`: the
    `rows_migrated` events after `vault_migrated`."""
    before, after = target.counts("v1"), target.counts()
    expected = {**before, "audit": before["audit"] + 1 + named}
    wrong = [t for t in expected if expected[t] != after[t]]
    if wrong:
        raise StoreError(
            f"The upgrade was undone: the new database does not hold the same rows "
            f"({', '.join(f'{t}: {before[t]} before, {after[t]} after' for t in wrong)})."
        )
    for table in ("addenda", "letters", "followups", "reviews"):
        if target.ids(table) != target.ids(table, "v1"):
            raise StoreError(f"The upgrade was undone: the {table} were renumbered.")
    recipients = [LEAD_RECIPIENT]
    with target.write() as tx:
        for n, (record_id, before_record) in enumerate(originals.items()):
            sealed = tx.sealed_record(record_id, recipients)
            if sealed is None or not _same(before_record, _sealing.open_record(keys, sealed)):
                raise StoreError(
                    f"The upgrade was undone: record {record_id} did not read back as it was."
                )
            row = row_of(before_record)
            for a in tx.sealed_addenda(record_id, recipients):
                _sealing.open_addendum(keys, row, a)
            for letter in tx.sealed_letters(record_id, recipients):
                _sealing.open_letter(keys, row, letter)
            for fu in tx.sealed_followups([record_id], recipients):
                _sealing.open_followup(keys, row, fu)
            for review in tx.sealed_reviews(record_id, recipients):
                _sealing.open_review(keys, row, review)
            report("verify", n + 1, len(originals))
    chain = target.verify_chain(head, audit.legacy_key(practice) or b"")
    if not chain.ok:
        raise StoreError(
            f"The upgrade was undone: the copied audit log does not verify ({chain.summary()})."
        )


def restore_pre_upgrade(
    folder: Path,
    snapshot: Path,
    username: str,
    password: str,
    present: LeadPresent | BreakGlassPresent,
    clock: Clock | None = None,
) -> Path:
    """Put a version-1 backup from before the upgrade back in place of the version-2 vault
    (docs/vault-v2.md §4, D3): only as an explicit step, with a lead present to open the
    backup's legacy key or, when no lead can, the holder of the break-glass code. The
    administrator signs in with the password they had when it was taken. The database is
    written afresh under its own version-1 key beside the live files, its `backup_restored`
    event appended, and swapped in through the restore journal (killed: undone or finished
    at the next open, never half version 1 and half version 2, the event there once); the
    live files and the lead's search index are kept aside. The vault is then version 1
    again and must be upgraded again."""
    clock = clock or SystemClock()
    folder, snapshot = Path(folder), Path(snapshot)
    name = snapshot.name
    if folder.is_dir():
        backup.finish_interrupted_restore(folder)  # an earlier restore killed part-way
    if not backups.is_pre_upgrade(folder, snapshot):
        raise StoreError(
            f"{name} is not a backup from before this vault's upgrade to version 2: restore "
            "it the usual way (gpshare restore without --undo-upgrade)."
        )
    snap = Vault(snapshot, Vault.read_header(snapshot))
    try:
        db_key = snap.check_password(username, password)
    except (WrongPasswordError, UnknownUserError) as exc:
        raise type(exc)(
            f"That is not {username}'s password in the backup {name}: a backup from before "
            "the upgrade opens with the password you had when it was taken."
        ) from exc
    # A session on the live vault opens the legacy key (the lead's, or the admin's with the
    # break-glass code) and records it; it is closed again before the restore takes the lock.
    who: dict[str, Any]
    if isinstance(present, LeadPresent):
        session = open_session(folder, present.username, present.password, clock)
        who = {"lead": present.username}
    else:
        session = _session_with_backup_key(folder, snap.vault_id, username, db_key, clock)
        # The code holder is not a user: that the code was used, and why, is what is known.
        who = {"breakglass": True, "reason": " ".join(present.reason.split())}
    try:
        if isinstance(present, LeadPresent):
            legacy_key = session.backups.open_legacy_backup(name, username)
        else:
            legacy_key = session.breakglass.open_legacy_backup(name, present.code, present.reason)
        session.audit("restore_started", None, {"snapshot": name, "undo_upgrade": True, **who})
    finally:
        session.close()
    actor = backup.snapshot_user(snapshot, legacy_key, username)
    if actor is None or not actor.active or actor.role not in access.POLICY["restore"]:
        raise PermissionDenied(
            f"{username} was not an active administrator when {name} was taken, so cannot "
            "restore it."
        )
    backup.check_backup(snapshot, db_key, legacy_key)
    lock = Vault(folder, {}).lock
    lock.acquire()
    try:
        replaced = Vault.open(folder).audit_head()[0]
        now = clock.now()
        seen, _issue = anchor.read(snap.vault_id, db_key)
        snap.add_restore_record(
            {"at": now.isoformat(), "snapshot": name, "replaced_seq": replaced},
            at_least=max(int(now.timestamp() * 1_000_000), (seen.restores + 1) if seen else 0),
        )
        event = backup.RestoredEvent(
            username,
            {
                "snapshot": name,
                "epoch": snap.restore_number(),
                "undo_upgrade": True,
                "format_version": 1,
                **who,
            },
        )
        aside = backup.restore_backup(
            folder,
            snapshot,
            db_key,
            now,
            snap,
            event,
            source_key=legacy_key,
            also_aside=backup.VERSION_2_LOCAL_FILES,
        )
    finally:
        lock.release()
    return aside


def _session_with_backup_key(
    folder: Path, vault_id: str, username: str, db_key: bytes, clock: Clock
) -> Session:
    """The administrator's session on the version-2 vault for a break-glass undo of the
    upgrade (D3), opened with the key their password from then opened in the pre-upgrade
    backup: that backup's database key is this vault's practice key (the upgrade kept it).
    It holds no personal keys (it reads M rows and appends events only); the user must be
    an active administrator here, and pending failure reports are recorded as at unlock."""
    vault = _open_vault(folder)
    if vault.format_version < 2 or vault.vault_id != vault_id:
        raise StoreError(
            "That backup is not from before this vault's upgrade: its key does not open the "
            "vault. Choose a backup of this vault."
        )
    keys = PracticeKeys(PracticeKey(bytes(db_key)), vault.vault_id)
    vault.lock.acquire()
    try:
        vault.verify_mac(keys)
        store, notes = _open_checked(vault, keys, clock)
        with store.read() as tx:
            user = tx.get_user(username)
        if user is None or not user.active or user.role not in access.POLICY["restore"]:
            store.close()
            raise PermissionDenied(
                f"{username} is not an active administrator of this vault: only an "
                "administrator can restore a backup."
            )
        session = Session(vault, store, user, keys, b"", clock)
        _audit_pending(session, vault.pending_reports(), notes)
        vault.confirm_unlock(username, clock)  # sealed by the header save of the next event
    except BaseException:
        vault.lock.release()
        raise
    return session
