"""Offline attacks by an insider with a copy of a version-2 vault folder (issue #13, DESIGN
§10.1 "Offline attack tests", docs/vault-v2.md §5).

The attacker here uses the project's own store modules (vault header, SQLCipher engine, key
primitives) and what they legitimately hold: their own password and, for the admin, the
practice recovery code. They never go through gpshare.services, which would enforce the role
table; what these tests show is that the *keys* enforce it. The practice they attack is
built once through the services (module fixture `practice`) and each test takes its own copy
of the folder; where the attack is an edit of that copy, the victim's own client (a services
session) is what must refuse it, and the test counts the wrap rows it did not write.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gpshare import nhs_number
from gpshare.clock import FixedClock
from gpshare.demo import choose_own_password
from gpshare.errors import PermissionDenied, ReplicaUnavailable, ValidationFailed
from gpshare.forms import load_form_by_id
from gpshare.services.assessments import DEFAULT_FORM_ID
from gpshare.services.record_keys import BREAKGLASS_RECIPIENT
from gpshare.store import backup, open_store
from gpshare.store.crypto import KdfParams
from gpshare.store.errors import TamperedError
from gpshare.store.keys import (
    BundleError,
    CiphertextFormatError,
    ClinicalKey,
    CommitmentError,
    DirectoryAlteredError,
    EnvelopeError,
    Label,
    LeadKeyEntry,
    ObjectBinding,
    ObjectKey,
    SealedBundle,
    SummaryBinding,
    UnwrapError,
    UserEntry,
    WrapBinding,
    WrapPurpose,
    open_bundle,
    open_object,
    open_summary,
    seal_bundle,
    sign_entry,
    unwrap_key,
    unwrap_object_key,
    wrap_key,
)
from gpshare.store.keys.bundle import UserKeys, raw_public
from gpshare.store.port import AuditEntry, ObjectWrap, ReplicaItem, RoleKeyWrap, Store
from gpshare.store.practice_keys import PracticeKeys
from gpshare.store.sqlcipher import db
from gpshare.store.sqlcipher.replica import REPLICA_NAME, LeadReplica
from gpshare.store.vault import Vault
from tests.conftest import PASSWORDS, SCENARIOS, VaultEnv, make_vault_v2


@contextmanager
def insider_store(folder: Path, key: bytes, clock: FixedClock) -> Iterator[Store]:
    """The vault's database opened with the store modules and a key the insider holds."""
    store = open_store(Vault.open(folder), key, clock)
    try:
        yield store
    finally:
        store.close()


def own_bundle(store: Store, vault_id: str, username: str) -> UserKeys:
    """The insider's own key bundle, opened with their own password."""
    with store.read() as tx:
        stored = tx.bundle(username)
    assert stored is not None, f"{username} has no key bundle"
    return open_bundle(stored.sealed, PASSWORDS[username], vault_id, username)


def every_role_wrap(store: Store) -> list[RoleKeyWrap]:
    with store.read() as tx:
        wraps = tx.role_key_wraps()
    assert wraps, "the vault has no role key wraps to attack"
    return wraps


def opens(wrap: RoleKeyWrap, key: X25519PrivateKey, vault_id: str) -> bool:
    """Whether `key` opens `wrap`, under the wrap's own binding or one naming any recipient."""
    for recipient in {wrap.recipient, "admin", "drsmith", "lead", "#lead", "#breakglass"}:
        binding = wrap.binding(vault_id)
        moved = type(binding)(
            binding.purpose,
            binding.vault_id,
            binding.subject_kind,
            binding.subject_id,
            recipient,
            binding.recipient_generation,
        )
        try:
            unwrap_key(wrap.wrap, key, moved)
        except UnwrapError:
            continue
        return True
    return False


def keys_from_practice_key(practice: PracticeKeys, vault_id: str) -> list[X25519PrivateKey]:
    """Every X25519 private key an admin could make out of the practice key: the root itself,
    the SQLCipher key, and HKDF of the root under every label of the binding table (computed
    by hand, as an attacker would, without the library's label policy)."""
    root = practice.practice.reveal()
    candidates = [root, bytes(practice)]
    for label in Label:
        hkdf = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=vault_id.encode("utf-8"),
            info=label.value.encode("utf-8"),
        )
        candidates.append(hkdf.derive(root))
    return [X25519PrivateKey.from_private_bytes(c) for c in candidates]


def test_admin_with_password_and_recovery_code_opens_no_clinical_or_lead_key(
    vault_env_v2: VaultEnv,
) -> None:
    env = vault_env_v2
    vault = Vault.open(env.folder)
    by_password = vault.unlock_with_password("admin", PASSWORDS["admin"], env.clock).db_key
    by_code = vault.unlock_with_recovery(env.recovery_code, env.clock)
    assert isinstance(by_password, PracticeKeys) and isinstance(by_code, PracticeKeys)
    # Both secrets reach the same practice key, which opens records.db (class M) …
    assert bytes(by_password) == bytes(by_code)
    with insider_store(env.folder, by_code, env.clock) as store:
        admin_keys = own_bundle(store, vault.vault_id, "admin")
        wraps = every_role_wrap(store)
        assert {w.key_name for w in wraps} == {"clinical", "lead"}
        attempts = [admin_keys.encryption, *keys_from_practice_key(by_code, vault.vault_id)]
        # … but nothing the admin holds opens any clinical or lead key wrap.
        for wrap in wraps:
            for key in attempts:
                assert not opens(wrap, key, vault.vault_id), (
                    f"the admin opened the {wrap.key_name} key generation {wrap.generation} "
                    f"wrapped for {wrap.recipient}"
                )


def test_a_clinicians_copy_opens_the_clinical_key_but_no_lead_key(vault_env_v2: VaultEnv) -> None:
    env = vault_env_v2
    vault = Vault.open(env.folder)
    practice = vault.unlock_with_password("drsmith", PASSWORDS["drsmith"], env.clock).db_key
    with insider_store(env.folder, practice, env.clock) as store:
        smith = own_bundle(store, vault.vault_id, "drsmith")
        wraps = every_role_wrap(store)
        mine = [w for w in wraps if w.recipient == "drsmith"]
        # Control: the clinician's own grant opens (so the attempts below are meaningful).
        assert [w.key_name for w in mine] == ["clinical"]
        assert len(unwrap_key(mine[0].wrap, smith.encryption, mine[0].binding(vault.vault_id)))
        assert opens(mine[0], smith.encryption, vault.vault_id)  # the probe can succeed
        for wrap in wraps:
            if wrap.key_name == "lead":
                assert not opens(wrap, smith.encryption, vault.vault_id)


def test_an_old_bundle_does_not_open_with_another_users_password(vault_env_v2: VaultEnv) -> None:
    env = vault_env_v2
    vault = Vault.open(env.folder)
    practice = vault.unlock_with_password("drjones", PASSWORDS["drjones"], env.clock).db_key
    with insider_store(env.folder, practice, env.clock) as store:
        with store.read() as tx:
            lead_bundle = tx.bundle("lead")
        assert lead_bundle is not None
        with pytest.raises(Exception, match="does not open"):
            open_bundle(lead_bundle.sealed, PASSWORDS["drjones"], vault.vault_id, "lead")
        # Nor does the lead's own password open it as someone else's bundle (bound to the user).
        with pytest.raises(Exception, match="does not open"):
            open_bundle(lead_bundle.sealed, PASSWORDS["lead"], vault.vault_id, "drjones")


# ----- a populated practice, built once through the services ---------------------------------
#
# Every free-text answer carries its own marker word, and the children have names, NHS numbers
# and dates of birth found nowhere else; addenda, follow-up notes, reviews, a household review
# and letters carry markers too. The insider's scans below look for every one of them.


def marker(tag: str) -> str:
    """A distinctive letters-only word for `tag` (nothing else in the folder spells it)."""
    digest = hashlib.sha256(tag.encode("utf-8")).digest()
    return "Zq" + "".join(chr(ord("a") + b % 26) for b in digest[:10])


TEXT_TYPES = ("text", "longtext")
SKIP_FIELDS = {"postcode", "child_given_name", "child_family_name"}  # set explicitly below
FAMILY = "Quillborough"
PRACTICE_TIME = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
CHILDREN = {  # record -> (given name, NHS number, date of birth)
    "A": ("Zephyrine", "9434765870", "2024-03-17"),
    "B": ("Wilhelmina", "9434765919", "2020-01-20"),
    "C": ("Thaddeus", "9990000018", "2021-02-11"),
}


@dataclass
class Practice:
    """The populated practice: its folder (never opened in place: tests take a copy), the
    clock, both recovery secrets, record ids and every word planted."""

    folder: Path
    clock: FixedClock
    recovery_code: str
    breakglass_code: str
    records: dict[str, str]
    markers: list[str]
    stored_markers: list[str]

    def copy(self, target: Path) -> VaultEnv:
        """A copy of the whole folder, as the insider takes it."""
        shutil.copytree(self.folder, target)
        return VaultEnv(target, self.clock, self.recovery_code, self.breakglass_code)

    def forbidden(self) -> list[str]:
        """Every string no decoded value or file may contain."""
        words = [*self.markers, FAMILY]
        for given, nhs, dob in CHILDREN.values():
            year, month, day = dob.split("-")
            when = date(int(year), int(month), int(day))
            words += [given, nhs, nhs_number.format_334(nhs), dob, f"{day}/{month}/{year}"]
            words += [when.strftime("%d %B %Y"), when.strftime("%d %b %Y"), f"{year}{month}{day}"]
        return words


def marked_answers(
    name: str, tag: str, given: str, nhs: str, dob: str
) -> tuple[dict[str, Any], list[str]]:
    """Scenario `name`'s answers with a marker in every free-text field of the form (present
    or not), the child named `given` FAMILY, and the carer sharing the family name."""
    answers = dict(json.loads(next(SCENARIOS.glob(f"{name}-*.json")).read_text())["answers"])
    form = load_form_by_id(DEFAULT_FORM_ID)
    planted = []
    for step in form.steps:
        for field in step.fields:
            if field.type in TEXT_TYPES and field.id not in SKIP_FIELDS:
                word = marker(f"{tag}:{field.id}")
                answers[field.id] = f"{answers.get(field.id, '')} {word}".strip()
                planted.append(word)
    answers.update(
        child_given_name=given, child_family_name=FAMILY, nhs_number=nhs, date_of_birth=dob
    )
    answers["address"] = f"14 Canal Row {marker(tag + ':address')}, Leeds"
    answers["postcode"] = "LS11 5AB"
    carer = marker(f"{tag}:carer-phone")
    answers["parents_carers"] = [
        {
            "name": f"Kayleigh {FAMILY}",
            "relationship": "mother",
            "parental_responsibility": True,
            "address": answers["address"],
            "phone": f"07700 900123 {carer}",
        }
    ]
    planted.append(carer)
    return answers, planted


def _populate(env: VaultEnv) -> Practice:
    markers: list[str] = []
    opened: list[str] = []
    records: dict[str, str] = {}
    answers = {}
    for tag, name in (("A", "01"), ("B", "03"), ("C", "01")):
        answers[tag], planted = marked_answers(name, tag, *CHILDREN[tag])
        markers += planted
    smith = env.session("drsmith")
    try:
        a = smith.assessments.start_assessment(answers=answers["A"])
        records["A"] = smith.assessments.complete(a.id)[0].id
        extra = {k: marker(f"A:{k}") for k in ("addendum", "note", "details")}
        smith.assessments.add_addendum(records["A"], f"Health visitor: {extra['addendum']}.")
        smith.referrals.record_followup(
            records["A"],
            "sent",
            note=f"Sent, {extra['note']}.",
            details={"method": extra["details"]},
        )
        smith.letters.generate_letter(records["A"], PASSWORDS["drsmith"])
        markers += extra.values()
        opened.append(json.dumps(smith.views.record_view(records["A"]).record.answers))
    finally:
        smith.close()
    jones = env.session("drjones")
    try:
        records["B"] = jones.assessments.start_assessment(answers=answers["B"]).id
        c = jones.assessments.start_assessment(answers=answers["C"])
        records["C"] = jones.assessments.complete(c.id)[0].id
        for tag in ("B", "C"):
            opened.append(json.dumps(jones.views.record_view(records[tag]).record.answers))
    finally:
        jones.close()
    lead = env.session("lead")
    try:
        review = {k: marker(f"review:{k}") for k in ("comments", "learning", "household")}
        lead.referrals.add_review(
            records["A"], "needs_discussion", review["comments"], review["learning"]
        )
        lead.lead.review_household_link(
            records["A"], records["C"], "same_household", f"Same flat, {review['household']}"
        )
        markers += review.values()
        view = lead.views.record_view(records["A"])
        opened.append(repr(view))
        _build_replica(lead, list(records.values()))
    finally:
        lead.close()
    admin = env.session("admin")
    try:
        admin.backups.backup_now()
    finally:
        admin.close()
    seen = "\n".join(opened)
    stored = [m for m in markers if m in seen]
    return Practice(
        env.folder, env.clock, env.recovery_code, env.breakglass_code, records, markers, stored
    )


def _build_replica(lead: Any, record_ids: list[str]) -> None:
    """The lead's lead-index.db, built with the store half of the replica from what the lead
    opens (the services half is another step): it must not open with the practice key."""
    items = []
    for rid in record_ids:
        try:
            record = lead.assessments.get_record(rid)
        except PermissionDenied:  # another clinician's draft
            continue
        items.append(ReplicaItem.from_record(record, narrative=json.dumps(record.answers)))
    replica = lead.store.replica(secrets.token_bytes(32))
    with lead.store.read() as tx:
        head = tx.audit_head()
    replica.rebuild(items, head)
    replica.close()


@pytest.fixture(scope="module")
def practice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Practice]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPSHARE_ANCHOR_DIR", str(tmp_path_factory.mktemp("anchors")))
        clock = FixedClock(PRACTICE_TIME)
        env = make_vault_v2(tmp_path_factory.mktemp("practice") / "vault", clock)
        yield _populate(env)


def test_the_practice_holds_what_the_scans_look_for(practice: Practice) -> None:
    # Control: the markers were stored (the authors and the lead read them back), so finding
    # none of them in the folder means they are sealed, not missing. The draft keeps a marker
    # in every free-text field of the form; a completed record keeps the fields its answers show.
    form = load_form_by_id(DEFAULT_FORM_ID)
    every_text_field = [
        marker(f"B:{f.id}")
        for step in form.steps
        for f in step.fields
        if f.type in TEXT_TYPES and f.id not in SKIP_FIELDS
    ]
    assert len(every_text_field) > 40
    objects = ["A:addendum", "A:note", "A:details", "review:comments", "review:learning"]
    missing = set(every_text_field + [marker(m) for m in objects]) - set(practice.stored_markers)
    assert not missing
    assert (practice.folder / REPLICA_NAME).exists()
    assert [p for p in (practice.folder / "backups").iterdir() if p.is_dir()]


def _decoded(value: object) -> list[bytes]:
    """A column value as bytes to search: text as UTF-8, blobs raw and decoded both ways."""
    if value is None:
        return []
    if isinstance(value, bytes):
        return [value, value.decode("utf-8", "ignore").encode(), value.decode("latin-1").encode()]
    return [str(value).encode("utf-8")]


def _dump(conn: Any) -> dict[str, bytes]:
    """Every table (FTS shadow tables included) and column of an open database, by table."""
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    dumped = {}
    for table in tables:
        parts = [
            part
            for row in conn.execute(f'SELECT * FROM "{table}"')
            for v in row
            for part in _decoded(v)
        ]
        dumped[table] = b"\n".join(parts)
    assert "records" in dumped and "record_summaries" in dumped
    return dumped


def _found(haystack: bytes, words: list[str]) -> list[str]:
    low = haystack.lower()
    return [w for w in words if w.lower().encode("utf-8") in low]


@pytest.mark.parametrize("secret", ["admin password", "practice recovery code"])
def test_admin_with_password_and_recovery_code_finds_no_identity_or_narrative(
    practice: Practice, tmp_path: Path, secret: str
) -> None:
    env = practice.copy(tmp_path / "copy")
    vault = Vault.open(env.folder)
    if secret == "admin password":
        key = vault.unlock_with_password("admin", PASSWORDS["admin"], env.clock).db_key
    else:
        key = vault.unlock_with_recovery(env.recovery_code, env.clock)
    assert isinstance(key, PracticeKeys)
    words = practice.forbidden()
    # records.db and every backup, opened with the practice key: every table and column.
    snapshots = [p for p in (env.folder / "backups").iterdir() if p.is_dir()]
    assert snapshots, "the practice has no backup to scan"
    for path in [env.folder / "records.db", *(p / backup.DB_NAME for p in snapshots)]:
        conn = db.open_database(path, bytes(key))
        try:
            for table, text in _dump(conn).items():
                assert not _found(text, words), f"{path.name} table {table}: {_found(text, words)}"
        finally:
            conn.close()
    # Every file in the folder, raw (header, WAL/SHM, journals, the replica, the backups).
    files = [p for p in env.folder.rglob("*") if p.is_file()]
    assert {"vault.json", "records.db", REPLICA_NAME} <= {p.name for p in files}
    for path in files:
        assert not _found(path.read_bytes(), words), (
            f"{path.name}: {_found(path.read_bytes(), words)}"
        )
    # The lead's replica is under the lead data key, not the practice key.
    with pytest.raises(ReplicaUnavailable):
        LeadReplica(env.folder / REPLICA_NAME, bytes(key)).open()


# ----- the insider's raw SQL on their copy --------------------------------------------------


@contextmanager
def raw_sql(folder: Path, username: str = "admin") -> Iterator[Any]:
    """records.db of the copy, opened with the practice key `username`'s password gives, as
    plain SQL (the triggers that keep tables append-only are the app's, not the attacker's)."""
    vault = Vault.open(folder)
    key = vault.unlock_with_password(username, PASSWORDS[username], FixedClock(PRACTICE_TIME))
    conn = db.open_database(folder / "records.db", bytes(key.db_key))
    try:
        yield conn
    finally:
        conn.close()


def wrap_counts(folder: Path) -> tuple[int, int]:
    """(role key wraps, object wraps) in the copy."""
    with raw_sql(folder) as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("role_key_wraps", "object_wraps")
        )


def object_wraps(conn: Any, where: str = "1", *args: object) -> list[ObjectWrap]:
    rows = conn.execute(
        "SELECT object_kind, object_id, recipient, recipient_generation, wrap, created "
        f"FROM object_wraps WHERE {where}",
        args,
    )
    return [ObjectWrap(r[0], r[1], r[2], r[3], bytes(r[4]), r[5]) for r in rows]


@dataclass
class Insider:
    """What a user holds with their copy: the vault id, their own bundle, their clinical keys
    (opened from their own role key wraps) and the store opened with the practice key."""

    vault_id: str
    keys: UserKeys
    clinical: dict[int, ClinicalKey]
    store: Store


@contextmanager
def insider(folder: Path, username: str) -> Iterator[Insider]:
    vault = Vault.open(folder)
    clock = FixedClock(PRACTICE_TIME)
    practice_key = vault.unlock_with_password(username, PASSWORDS[username], clock).db_key
    with insider_store(folder, practice_key, clock) as store:
        mine = own_bundle(store, vault.vault_id, username)
        with store.read() as tx:
            wraps = [w for w in tx.role_key_wraps() if w.recipient == username]
        clinical = {
            w.generation: ClinicalKey(
                unwrap_key(w.wrap, mine.encryption, w.binding(vault.vault_id)), w.generation
            )
            for w in wraps
            if w.key_name == "clinical"
        }
        yield Insider(vault.vault_id, mine, clinical, store)


def test_clinician_copy_reads_no_colleague_narrative(practice: Practice, tmp_path: Path) -> None:
    env = practice.copy(tmp_path / "copy")
    rec = practice.records
    with insider(env.folder, "drsmith") as smith, raw_sql(env.folder) as conn:
        everything = object_wraps(conn)
        theirs = [w for w in everything if w.recipient != "drsmith"]
        mine = [w for w in everything if w.recipient == "drsmith"]
        assert {w.object_kind for w in mine} >= {"answers", "addendum", "followup-note", "letter"}
        # Control: drsmith's own answers open (their own narrative is theirs to read) …
        [own] = [w for w in mine if w.object_kind == "answers" and w.object_id == rec["A"]]
        ct, commit, version, form_id, form_version = conn.execute(
            "SELECT answers_ct, answers_commit, version, form_id, form_version FROM records "
            "WHERE id = ?",
            (rec["A"],),
        ).fetchone()
        key = unwrap_object_key(
            own.wrap, smith.keys.encryption, own.binding(smith.vault_id), commit
        )
        binding = ObjectBinding(
            smith.vault_id, rec["A"], "answers", rec["A"], version, "drsmith", form_id, form_version
        )
        assert marker("A:concern_narrative").encode() in open_object(key, ct, binding)
        # … but no wrap made for anyone else (drjones, the lead, the lead key) opens for them,
        # whatever recipient the row is relabelled with.
        assert any(w.object_id == rec["B"] for w in theirs)
        for wrap in theirs:
            for recipient in {wrap.recipient, "drsmith"}:
                moved = replace(wrap, recipient=recipient)
                with pytest.raises(UnwrapError):
                    unwrap_key(wrap.wrap, smith.keys.encryption, moved.binding(smith.vault_id))
        # drsmith *can* read every C summary, a colleague's included (DESIGN §10.1: class C is
        # for every clinician, for chronology and earlier records).
        with smith.store.read() as tx:
            [summary] = tx.summaries([rec["C"]])
        text = open_summary(
            smith.clinical[summary.generation],
            summary.ct,
            SummaryBinding(smith.vault_id, rec["C"], summary.version),
        )
        assert CHILDREN["C"][0].encode() in text and CHILDREN["C"][1].encode() in text


# ----- an altered key directory -------------------------------------------------------------


def _swap_directory(folder: Path, where: str, signer: Ed25519PrivateKey | None = None) -> None:
    """Replace the public key of the directory rows `where` with an attacker's, and (with
    `signer`) re-sign them with the attacker's own signing key."""
    vault_id = Vault.open(folder).vault_id
    attacker = raw_public(X25519PrivateKey.generate())
    with raw_sql(folder) as conn:
        conn.execute("DROP TRIGGER directory_append_only")
        ids = [r[0] for r in conn.execute(f"SELECT id FROM directory WHERE {where}")]
        assert ids
        for row_id in ids:
            conn.execute("UPDATE directory SET public_key = ? WHERE id = ?", (attacker, row_id))
            if signer is not None:
                kind, user, generation, role, active = conn.execute(
                    "SELECT kind, user_id, generation, role, active FROM directory WHERE id = ?",
                    (row_id,),
                ).fetchone()
                entry: LeadKeyEntry | UserEntry = (
                    LeadKeyEntry(vault_id, generation, attacker)
                    if kind == "lead-key"
                    else UserEntry(vault_id, user, role, attacker, generation, bool(active))
                )
                signed = sign_entry(entry, signer)
                conn.execute(
                    "UPDATE directory SET signature = ? WHERE id = ?", (signed.signature, row_id)
                )


def addendum_refused(env: VaultEnv, username: str, record_id: str) -> None:
    """`username` adds an addendum to `record_id`: the altered directory is refused and no
    wrap row is written."""
    before = wrap_counts(env.folder)
    session = env.session(username)
    try:
        with pytest.raises(DirectoryAlteredError, match="key directory has been altered"):
            session.assessments.add_addendum(record_id, "A later fact.")
    finally:
        session.close()
    assert wrap_counts(env.folder) == before


@pytest.mark.parametrize("resigned", [False, True], ids=["key-swapped", "resigned-by-attacker"])
def test_swapped_lead_key_in_directory_is_refused(
    practice: Practice, tmp_path: Path, resigned: bool
) -> None:
    env = practice.copy(tmp_path / "copy")
    _swap_directory(
        env.folder, "kind = 'lead-key'", Ed25519PrivateKey.generate() if resigned else None
    )
    # drsmith's client wraps each new object key for the lead key: it checks the entry
    # against the lead signing key pinned in drsmith's bundle and refuses.
    addendum_refused(env, "drsmith", practice.records["A"])


@pytest.mark.parametrize("resigned", [False, True], ids=["key-swapped", "resigned-by-attacker"])
def test_swapped_user_key_is_refused(practice: Practice, tmp_path: Path, resigned: bool) -> None:
    env = practice.copy(tmp_path / "copy")
    _swap_directory(
        env.folder,
        "kind = 'user' AND user_id = 'drjones' AND signature IS NOT NULL",
        Ed25519PrivateKey.generate() if resigned else None,
    )
    # The lead's addendum on drjones's record is wrapped for its author: refused.
    addendum_refused(env, "lead", practice.records["C"])
    with pytest.raises(DirectoryAlteredError):  # drjones's own client refuses its entry too
        env.session("drjones")


def test_swapped_pin_in_bundle_needs_the_password(practice: Practice, tmp_path: Path) -> None:
    env = practice.copy(tmp_path / "copy")
    with raw_sql(env.folder) as conn:
        blob = bytes(conn.execute(
            "SELECT blob FROM key_bundles WHERE user_id = 'drsmith' AND state = 'active'"
        ).fetchone()[0])  # fmt: skip
        vault_id = Vault.open(env.folder).vault_id
        with (
            insider_store(
                env.folder,
                bytes(Vault.open(env.folder).unlock_with_recovery(env.recovery_code, env.clock)),
                env.clock,
            ) as store,
            store.read() as tx,
        ):
            stored = tx.bundle("drsmith")
        assert stored is not None
        # Every byte of the sealed bundle (where the pin lives) is covered: an edit anywhere,
        # the pin included, fails to open even with drsmith's own password.
        for at in (0, len(blob) // 2, len(blob) - 1):
            edited = blob[:at] + bytes([blob[at] ^ 1]) + blob[at + 1 :]
            # The header byte names another format; any other byte fails authentication.
            with pytest.raises(CiphertextFormatError if at == 0 else BundleError):
                open_bundle(
                    replace(stored.sealed, blob=edited), PASSWORDS["drsmith"], vault_id, "drsmith"
                )
        # An attacker's own bundle with their pin needs a password drsmith would type: sealed
        # under the admin's password, drsmith's password does not open it.
        forged = seal_bundle(
            UserKeys.generate(raw_public(Ed25519PrivateKey.generate())),
            PASSWORDS["admin"], vault_id, "drsmith", stored.sealed.generation, stored.sealed.kdf,
        )  # fmt: skip
        with pytest.raises(BundleError):
            open_bundle(forged, PASSWORDS["drsmith"], vault_id, "drsmith")
        conn.execute(
            "UPDATE key_bundles SET salt = ?, blob = ? WHERE user_id = 'drsmith' "
            "AND state = 'active'",
            (forged.salt, forged.blob),
        )
        entries_before = conn.execute("SELECT count(*) FROM directory").fetchone()[0]
    before = wrap_counts(env.folder)
    # drsmith's client does not take the forged keys or their pin: the bundle does not open
    # with the password that has just opened drsmith's slot, so the sign-in is refused with an
    # audit event. The bundle is not set aside and no new key is published, so a
    # practice-key holder cannot put drsmith back into trust on first grant this way.
    with pytest.raises(TamperedError, match=r"does not open with the password .* Ask your"):
        env.session("drsmith")
    assert wrap_counts(env.folder) == before
    with raw_sql(env.folder) as conn:
        bundles = conn.execute(
            "SELECT generation, state FROM key_bundles WHERE user_id = 'drsmith'"
        ).fetchall()
        entries = conn.execute("SELECT count(*) FROM directory").fetchone()[0]
        refused = conn.execute(
            "SELECT actor, details FROM audit WHERE action = 'key_bundle_refused'"
        ).fetchall()
    assert [tuple(b) for b in bundles] == [(stored.sealed.generation, "active")]
    assert entries == entries_before  # no new pending key
    assert [(a, json.loads(d)) for a, d in refused] == [
        ("drsmith", {"username": "drsmith", "key_generation": stored.sealed.generation})
    ]


# ----- a reset user's new key ---------------------------------------------------------------


def test_reset_key_not_rewrapped_before_confirmation(practice: Practice, tmp_path: Path) -> None:
    env = practice.copy(tmp_path / "copy")
    admin = env.session("admin")
    try:
        temp = admin.users.reset_password("drsmith")
    finally:
        admin.close()
    choose_own_password(env.folder, env.clock, "drsmith", temp, PASSWORDS["drsmith"])

    def for_new_key() -> tuple[int, int]:
        with raw_sql(env.folder) as conn:
            return tuple(  # type: ignore[return-value]
                conn.execute(
                    f"SELECT count(*) FROM {t} WHERE recipient = 'drsmith' "
                    "AND recipient_generation = 2"
                ).fetchone()[0]
                for t in ("role_key_wraps", "object_wraps")
            )

    smith = env.session("drsmith")  # the new key is published, pending
    try:
        own = smith.directory.own_key()
        assert own is not None and not smith.keys.confirmed
        words = own.fingerprint
    finally:
        smith.close()
    assert for_new_key() == (0, 0)
    lead = env.session("lead")  # a lead session before confirming grants nothing
    try:
        lead.assessments.add_addendum(practice.records["A"], "Written before the confirmation.")
        assert for_new_key() == (0, 0)
        wrong = "apple banana cherry damson elder fig"
        with pytest.raises(ValidationFailed):
            lead.directory.confirm("drsmith", wrong)
        assert for_new_key() == (0, 0)
        lead.directory.confirm("drsmith", words)
    finally:
        lead.close()
    role, objects = for_new_key()
    # The clinical key, and every object drsmith wrote (answers, addenda, notes, letters).
    assert role == 1 and objects >= 5


# ----- moved wraps and ciphertexts, swapped object keys ------------------------------------


@pytest.mark.parametrize(
    "moved", ["other record", "other recipient", "other purpose", "other generation"]
)
def test_moved_wrap_fails(practice: Practice, tmp_path: Path, moved: str) -> None:
    env = practice.copy(tmp_path / "copy")
    rec = practice.records
    with insider(env.folder, "drsmith") as smith, raw_sql(env.folder) as conn:
        [wrap] = object_wraps(
            conn, "object_kind = 'answers' AND object_id = ? AND recipient = 'drsmith'", rec["A"]
        )
        # Control: in place, the wrap opens.
        assert unwrap_key(wrap.wrap, smith.keys.encryption, wrap.binding(smith.vault_id))
        binding = {
            "other record": replace(wrap, object_id=rec["C"]).binding(smith.vault_id),
            "other recipient": replace(wrap, recipient="drjones").binding(smith.vault_id),
            "other purpose": WrapBinding(
                WrapPurpose.CLINICAL_KEY,
                smith.vault_id,
                "answers",
                rec["A"],
                "drsmith",
                wrap.recipient_generation,
            ),  # fmt: skip
            "other generation": replace(
                wrap, recipient_generation=wrap.recipient_generation + 1
            ).binding(smith.vault_id),
        }[moved]
        with pytest.raises(UnwrapError):
            unwrap_key(wrap.wrap, smith.keys.encryption, binding)


@pytest.mark.parametrize(
    "moved",
    ["answers to another record", "answers to another version", "summary to another record",
     "summary to another version", "addendum to another object"],
)  # fmt: skip
def test_moved_ciphertext_fails(practice: Practice, tmp_path: Path, moved: str) -> None:
    env = practice.copy(tmp_path / "copy")
    rec = practice.records
    with insider(env.folder, "drsmith") as smith, raw_sql(env.folder) as conn:
        row = conn.execute(
            "SELECT answers_ct, answers_commit, version, form_id, form_version FROM records "
            "WHERE id = ?",
            (rec["A"],),
        ).fetchone()
        ct, commit, version, form_id, form_version = row
        [wrap] = object_wraps(
            conn, "object_kind = 'answers' AND object_id = ? AND recipient = 'drsmith'", rec["A"]
        )
        key = unwrap_object_key(
            wrap.wrap, smith.keys.encryption, wrap.binding(smith.vault_id), commit
        )
        here = ObjectBinding(
            smith.vault_id, rec["A"], "answers", rec["A"], version, "drsmith", form_id, form_version
        )
        assert open_object(key, ct, here)  # control
        with smith.store.read() as tx:
            [summary] = tx.summaries([rec["A"]])
        clinical = smith.clinical[summary.generation]
        assert open_summary(
            clinical, summary.ct, SummaryBinding(smith.vault_id, rec["A"], summary.version)
        )
        add_id, add_ct, add_commit = conn.execute(
            "SELECT object_id, body_ct, body_commit FROM addenda WHERE record_id = ?", (rec["A"],)
        ).fetchone()
        [add_wrap] = object_wraps(conn, "object_id = ? AND recipient = 'drsmith'", add_id)
        add_key = unwrap_object_key(
            add_wrap.wrap, smith.keys.encryption, add_wrap.binding(smith.vault_id), add_commit
        )
        add_here = ObjectBinding(
            smith.vault_id, rec["A"], "addendum", add_id, 0, "drsmith", form_id, form_version
        )
        assert open_object(add_key, add_ct, add_here)  # control
        [note_id] = conn.execute(
            "SELECT object_id FROM followups WHERE record_id = ? AND object_id IS NOT NULL",
            (rec["A"],),
        ).fetchone()
        with pytest.raises(EnvelopeError):
            if moved == "answers to another record":
                open_object(key, ct, replace(here, record_id=rec["C"], object_id=rec["C"]))
            elif moved == "answers to another version":
                open_object(key, ct, replace(here, version=version + 1))
            elif moved == "summary to another record":
                open_summary(
                    clinical, summary.ct, SummaryBinding(smith.vault_id, rec["C"], summary.version)
                )
            elif moved == "summary to another version":
                open_summary(
                    clinical,
                    summary.ct,
                    SummaryBinding(smith.vault_id, rec["A"], summary.version + 1),
                )
            else:
                open_object(add_key, add_ct, replace(add_here, object_id=note_id))


def test_wrong_object_key_fails_commitment(practice: Practice, tmp_path: Path) -> None:
    """Anyone with the practice key can write a wrap: HPKE needs only the recipient's public
    key. A wrap of the attacker's own object key, made for drsmith with the right binding,
    opens; the commitment stored for the object refuses the key."""
    env = practice.copy(tmp_path / "copy")
    rec = practice.records
    with insider(env.folder, "drsmith") as smith, raw_sql(env.folder) as conn:
        [wrap] = object_wraps(
            conn, "object_kind = 'answers' AND object_id = ? AND recipient = 'drsmith'", rec["A"]
        )
        [commit] = conn.execute(
            "SELECT answers_commit FROM records WHERE id = ?", (rec["A"],)
        ).fetchone()
        forged = wrap_key(
            ObjectKey.generate(), smith.keys.encryption.public_key(), wrap.binding(smith.vault_id)
        )
        assert unwrap_key(forged, smith.keys.encryption, wrap.binding(smith.vault_id))
        with pytest.raises(CommitmentError):
            unwrap_object_key(forged, smith.keys.encryption, wrap.binding(smith.vault_id), commit)
        # Written into the copy in place of the real wrap, drsmith's client refuses the record.
        conn.execute("DROP TRIGGER object_wraps_append_only")
        conn.execute(
            "UPDATE object_wraps SET wrap = ? WHERE object_kind = 'answers' AND object_id = ? "
            "AND recipient = 'drsmith'",
            (forged, rec["A"]),
        )
    session = env.session("drsmith")
    try:
        with pytest.raises(CommitmentError):
            session.views.record_view(rec["A"])
    finally:
        session.close()


# ----- an edited class-M row ----------------------------------------------------------------


@pytest.mark.parametrize(
    "edit",
    ["author", "version", "status", "dates"],
)
def test_edited_m_row_fails_its_mac(practice: Practice, tmp_path: Path, edit: str) -> None:
    """Author and version are in the answers object's AAD, so those edits are refused by the
    envelope; the rest of the row by its row MAC (docs/vault-v2.md section 1)."""
    env = practice.copy(tmp_path / "copy")
    rid = practice.records["A"]
    sql = {
        "author": "UPDATE records SET clinician = 'drjones' WHERE id = ?",
        "version": "UPDATE records SET version = version + 1 WHERE id = ?",
        "status": "UPDATE records SET status = 'draft', completed = NULL WHERE id = ?",
        "dates": "UPDATE records SET created = '2026-01-01T00:00:00+00:00' WHERE id = ?",
    }[edit]
    with raw_sql(env.folder) as conn:
        conn.execute("DROP TRIGGER records_frozen")  # the app's guard, not the attacker's
        conn.execute(sql, (rid,))
    lead = env.session("lead")
    try:
        with pytest.raises((TamperedError, EnvelopeError), match="altered"):
            lead.views.record_view(rid)
    finally:
        lead.close()


def test_completed_record_set_back_to_draft_cannot_be_saved_over(
    practice: Practice, tmp_path: Path
) -> None:
    """The finding the row MAC closes: a completed record put back to draft in SQL is refused
    to its own author's save, by name, and nothing is written over it."""
    env = practice.copy(tmp_path / "copy")
    rid = practice.records["A"]
    with raw_sql(env.folder) as conn:
        conn.execute("DROP TRIGGER records_frozen")
        conn.execute("UPDATE records SET status = 'draft', completed = NULL WHERE id = ?", (rid,))
        before = tuple(conn.execute("SELECT version, answers_ct FROM records WHERE id = ?", (rid,)).fetchone())  # fmt: skip
    smith = env.session("drsmith")
    try:
        with pytest.raises(TamperedError, match=rf"row {rid} .*table 'records'.* altered"):
            smith.assessments.save_draft(rid, {"narrative": "written over"})
    finally:
        smith.close()
    with raw_sql(env.folder) as conn:
        after = tuple(conn.execute("SELECT version, answers_ct FROM records WHERE id = ?", (rid,)).fetchone())  # fmt: skip
    assert after == before


def test_a_write_to_an_edited_row_is_refused_not_re_maced(
    practice: Practice, tmp_path: Path
) -> None:
    """The engine checks the old row's MAC before it changes a row, so a legitimate write never
    launders an edit made behind it: the write is refused by name and nothing changes."""
    env = practice.copy(tmp_path / "copy")
    with raw_sql(env.folder) as conn:
        conn.execute("UPDATE users SET full_name = 'Dr Impostor' WHERE username = 'drjones'")
        before = tuple(conn.execute("SELECT active, row_mac FROM users WHERE username = 'drjones'").fetchone())  # fmt: skip
    key = Vault.open(env.folder).unlock_with_password("admin", PASSWORDS["admin"], env.clock).db_key
    with (
        insider_store(env.folder, key, env.clock) as store,
        pytest.raises(TamperedError, match=r"row drjones .*table 'users'"),
        store.write(AuditEntry("admin", "user_disabled")) as tx,
    ):
        tx.set_user_active("drjones", False)
    with raw_sql(env.folder) as conn:
        after = tuple(conn.execute("SELECT active, row_mac FROM users WHERE username = 'drjones'").fetchone())  # fmt: skip
    assert after == before


def test_audit_verify_names_an_edited_row(practice: Practice, tmp_path: Path) -> None:
    """A record's date moved in SQL: the chain is intact, but the lead's audit verify fails
    naming the row (every M row is checked, not only those a screen reads)."""
    env = practice.copy(tmp_path / "copy")
    rid = practice.records["B"]
    with raw_sql(env.folder) as conn:
        conn.execute("DROP TRIGGER records_frozen")
        conn.execute(
            "UPDATE records SET created = '2026-01-01T00:00:00+00:00' WHERE id = ?", (rid,)
        )
    lead = env.session("lead")
    try:
        report = lead.audit_trail.verify_audit()
    finally:
        lead.close()
    assert not report.ok and report.broken_at is None
    assert re.search(rf"row {rid} .*table 'records'", report.problem), report.problem
    assert report.summary().startswith(f"Vault check FAILED: row {rid}")


def test_user_made_lead_in_sql_is_refused_at_sign_in(practice: Practice, tmp_path: Path) -> None:
    """A clinician made a lead in SQL: every sign-in reads the users table, so each is
    refused naming the row (fail closed: the practice restores a backup)."""
    env = practice.copy(tmp_path / "copy")
    with raw_sql(env.folder) as conn:
        conn.execute("UPDATE users SET role = 'lead' WHERE username = 'drjones'")
    for user in ("drjones", "lead"):
        with pytest.raises(TamperedError, match=r"row drjones .*table 'users'.* altered"):
            env.session(user)


# ----- remembered logins and the break-glass code -------------------------------------------


def test_remembered_login_never_opens_lead_key(
    practice: Practice, tmp_path: Path, memory_keyring: Any
) -> None:
    env = practice.copy(tmp_path / "copy")
    lead = env.session("lead")
    try:
        lead.users.remember_login()
    finally:
        lead.close()
    vault = Vault.open(env.folder)
    unlocked = vault.unlock_with_keyring("lead", env.clock)
    copy = vault.keyring_bundle("lead")
    assert copy is not None and unlocked.user_secret
    sealed = SealedBundle(
        int(copy["generation"]),
        KdfParams.from_dict(copy["kdf"]),
        base64.b64decode(copy["salt"]),
        base64.b64decode(copy["blob"]),
    )
    remembered = open_bundle(sealed, unlocked.user_secret.hex(), vault.vault_id, "lead")
    assert remembered.lead_access is None
    with insider_store(env.folder, unlocked.db_key, env.clock) as store:
        lead_wraps = [w for w in every_role_wrap(store) if w.key_name == "lead"]
        typed = own_bundle(store, vault.vault_id, "lead")
    assert typed.lead_access is not None
    mine = [w for w in lead_wraps if w.recipient == "lead"]
    assert mine
    for wrap in mine:  # control: the typed password's bundle opens the lead's lead-key wraps
        assert opens(wrap, typed.lead_access, vault.vault_id)
    for wrap in lead_wraps:
        assert not opens(wrap, remembered.encryption, vault.vault_id)


def test_breakglass_code_opens_every_generation(practice: Practice, tmp_path: Path) -> None:
    """DESIGN §10 "Limits": whoever holds the break-glass code (and a copy of the folder)
    opens the clinical and lead keys of every generation. Asserted so that it stays visible."""
    env = practice.copy(tmp_path / "copy")
    admin = env.session("admin")
    try:
        admin.users.disable_user("drjones")  # a leaver: the next lead session rotates
    finally:
        admin.close()
    env.session("lead").close()
    vault = Vault.open(env.folder)
    breakglass = vault.open_breakglass(env.breakglass_code, env.clock)
    practice_key = vault.unlock_with_recovery(env.recovery_code, env.clock)
    with insider_store(env.folder, practice_key, env.clock) as store:
        wraps = every_role_wrap(store)
    generations = {(w.key_name, w.generation) for w in wraps}
    assert ("clinical", 2) in generations  # the rotation happened
    opened = set()
    for wrap in wraps:
        if wrap.recipient == BREAKGLASS_RECIPIENT:
            unwrap_key(wrap.wrap, breakglass, wrap.binding(vault.vault_id))
            opened.add((wrap.key_name, wrap.generation))
    assert opened == generations
