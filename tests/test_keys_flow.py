"""Vault version 2, step 3 (docs/vault-v2.md §2, §3): bundles, the signed key directory, a
lead's confirmation and the key ring a session holds, through the services with a cheap KDF.
Every test of a v2 practice runs on an embedded vault and on a practice server (issue #14)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from gpshare.clock import FixedClock
from gpshare.demo import add_new_user, choose_own_password
from gpshare.errors import KeyNotHeld, PermissionDenied, ServiceError, ValidationFailed
from gpshare.filters import AuditFilter
from gpshare.services import LeadAtInit, Session, create_vault_v2, open_session
from gpshare.services.record_keys import BREAKGLASS_RECIPIENT, LEAD_RECIPIENT
from gpshare.services.vaults import ServerTarget, open_session_keyring
from gpshare.store.crypto import CHEAP_TEST_KDF
from gpshare.store.keys import (
    DirectoryAlteredError,
    ObjectKey,
    UnwrapError,
    WrapBinding,
    commitment,
    open_bundle,
    unwrap_key,
    wrap_key,
)
from gpshare.store.keys.bundle import raw_public
from gpshare.store.keys.directory import fingerprint
from gpshare.store.port import AuditEvent, ObjectWrap, StoredBundle
from gpshare.store.vault import Vault
from tests.conftest import PASSWORDS
from tests.storehelp import raw_connection

LEAD = LeadAtInit("lead", "Dr Priya Natarajan", PASSWORDS["lead"], "7654321")
# A directory entry's status: records.db stores it, the server derives it from the signature
# (an entry is confirmed exactly when it is signed: a CHECK on both engines).
STATUS = "CASE WHEN signature IS NULL THEN 'pending' ELSE 'confirmed' END"
# Tests that take server_dsn (through `v2` or directly) run on both engines (conftest.py).
RUN_ON_BOTH_ENGINES = True


@dataclass
class V2:
    folder: Path
    clock: FixedClock
    recovery_code: str
    breakglass_code: str

    def session(self, username: str, password: str | None = None) -> Session:
        return open_session(self.folder, username, password or PASSWORDS[username], self.clock)

    def add(self, username: str, role: str = "clinician") -> str:
        """An admin adds `username`; returns the one-time password."""
        admin = self.session("admin")
        try:
            return add_new_user(admin, username, username.title(), role, "1234567")
        finally:
            admin.close()

    def first_login(self, username: str, initial: str) -> None:
        choose_own_password(self.folder, self.clock, username, initial, PASSWORDS[username])


def make_v2(
    folder: Path, clock: FixedClock, lead: LeadAtInit | None = LEAD, dsn: str | None = None
) -> V2:
    """A v2 practice in `folder`, or (with `dsn`) on that server with `folder` a workstation."""
    created = create_vault_v2(
        folder,
        practice_name="Canal Street Surgery",
        admin_username="admin",
        admin_full_name="Pat Admin",
        admin_password=PASSWORDS["admin"],
        lead=lead,
        clock=clock,
        kdf=CHEAP_TEST_KDF,
        server=ServerTarget(dsn, f"ws_{folder.parent.name}"[:60]) if dsn else None,
    )
    created.session.close()
    return V2(folder, clock, created.recovery_code, created.breakglass_code)


@pytest.fixture
def v2(tmp_path: Path, clock: FixedClock, server_dsn: str | None) -> V2:
    return make_v2(tmp_path / "vault", clock, dsn=server_dsn)


@pytest.fixture
def smith_pending(v2: V2) -> V2:
    """drsmith added and signed in once with their own password: their key is pending."""
    v2.first_login("drsmith", v2.add("drsmith"))
    return v2


def rows(session: Session, sql: str) -> list[tuple[object, ...]]:
    """A plain SELECT on the vault's own database (records.db, or the server's)."""
    conn = raw_connection(session)
    try:
        return [tuple(r) for r in conn.execute(sql)]
    finally:
        if session.vault.engine == "postgres":
            conn.close()  # a connection of its own: one per call


def counts(session: Session) -> tuple[int, int, int, int]:
    """(directory rows, role key wraps, object wraps, audit events)."""
    return tuple(  # type: ignore[return-value]
        rows(session, f"SELECT count(*) FROM {table}")[0][0]
        for table in ("directory", "role_key_wraps", "object_wraps", "audit")
    )


def events(session: Session, action: str) -> list[AuditEvent]:
    with session.store.read() as tx:
        return tx.audit_events(AuditFilter(action=action), limit=None)


def confirm_smith(v2: V2) -> None:
    lead = v2.session("lead")
    try:
        [pending] = [p for p in lead.directory.pending() if p.username == "drsmith"]
        lead.directory.confirm("drsmith", pending.fingerprint)
    finally:
        lead.close()


# ----- init --------------------------------------------------------------------------------


def test_init_with_a_lead_appoints_them_and_returns_both_secrets(v2):
    assert v2.recovery_code != v2.breakglass_code
    vault = Vault.open(v2.folder)
    assert vault.format_version == 2
    lead = v2.session("lead")
    try:
        keys = lead.keys
        assert keys is not None and keys.confirmed and keys.holds_lead_key
        assert [k.generation for k in keys.clinical_generations()] == [1]
        assert keys.pin == raw_public(keys.lead_signing())
        assert lead.users.signing_certificate("lead") is not None
        directory = rows(lead, f"SELECT kind, user_id, {STATUS} FROM directory ORDER BY id")
        assert directory == [
            ("lead-key", None, "confirmed"),
            ("user", "admin", "confirmed"),
            ("user", "lead", "confirmed"),
        ]
        wraps = rows(lead, "SELECT key_name, generation, recipient FROM role_key_wraps")
        assert sorted(wraps) == [
            ("clinical", 1, BREAKGLASS_RECIPIENT),
            ("clinical", 1, "lead"),
            ("lead", 1, BREAKGLASS_RECIPIENT),
            ("lead", 1, "lead"),
        ]
        # The break-glass code (and nothing else) opens both role keys' wraps for it.
        breakglass = vault.open_breakglass(v2.breakglass_code, v2.clock)
        with lead.store.read() as tx:
            for wrap in tx.role_key_wraps(BREAKGLASS_RECIPIENT):
                raw = unwrap_key(wrap.wrap, breakglass, wrap.binding(vault.vault_id))
                if wrap.key_name == "clinical":
                    assert raw == keys.clinical().reveal()
                else:
                    assert raw == keys.lead_keys()[0].reveal()
        [created] = events(lead, "vault_created")
        assert created.details["lead"] == "lead" and created.details["format_version"] == 2
    finally:
        lead.close()
    admin = v2.session("admin")
    try:
        assert admin.keys is not None and admin.keys.confirmed and admin.keys.pin is not None
        with pytest.raises(KeyNotHeld):
            admin.keys.clinical()
        assert not admin.keys.holds_lead_key
    finally:
        admin.close()


def test_init_without_a_lead_leaves_the_admin_pending(tmp_path, clock, server_dsn):
    env = make_v2(tmp_path / "vault", clock, lead=None, dsn=server_dsn)
    admin = env.session("admin")
    try:
        assert rows(admin, f"SELECT kind, user_id, {STATUS} FROM directory ORDER BY id") == [
            ("lead-key", None, "confirmed"),
            ("user", "admin", "pending"),
        ]
        assert admin.keys is not None and not admin.keys.confirmed
        assert {r[0] for r in rows(admin, "SELECT recipient FROM role_key_wraps")} == {
            BREAKGLASS_RECIPIENT
        }
    finally:
        admin.close()


def test_init_refuses_a_weak_lead_password_before_creating_anything(tmp_path, clock, server_dsn):
    weak = LeadAtInit("lead", "Dr Priya Natarajan", "password1")
    with pytest.raises(ValidationFailed, match="Safeguarding lead: Password"):
        make_v2(tmp_path / "vault", clock, lead=weak, dsn=server_dsn)
    same = LeadAtInit("admin", "Dr Priya Natarajan", PASSWORDS["lead"])
    with pytest.raises(ValidationFailed, match="its own username|their own username"):
        make_v2(tmp_path / "vault", clock, lead=same, dsn=server_dsn)
    assert not (tmp_path / "vault").exists()


# ----- first login, pending, confirmation ---------------------------------------------------


def test_first_login_publishes_a_pending_key_and_nothing_is_wrapped_for_it(smith_pending):
    smith = smith_pending.session("drsmith")
    try:
        keys = smith.keys
        assert keys is not None and keys.user_keys is not None and not keys.confirmed
        assert keys.pin is None and keys.own_generation == 1
        with pytest.raises(KeyNotHeld, match="lead must confirm"):
            keys.clinical()
        # An unconfirmed writer wraps for themself only.
        assert [r.id for r in keys.recipients("drsmith")] == ["drsmith"]
        own = smith.directory.own_key()
        assert own is not None and not own.confirmed
        [published] = events(smith, "key_published")
        assert published.actor == "drsmith"
        assert published.details["fingerprint"] == own.fingerprint
        assert rows(smith, "SELECT count(*) FROM role_key_wraps WHERE recipient = 'drsmith'") == [
            (0,)
        ]
        [(state,)] = rows(smith, "SELECT state FROM key_bundles WHERE user_id = 'drsmith'")
        assert state == "active"
    finally:
        smith.close()


def test_lead_confirms_with_the_right_words_and_the_clinician_then_holds_the_clinical_key(
    smith_pending,
):
    smith = smith_pending.session("drsmith")
    own = smith.directory.own_key()
    smith.close()
    lead = smith_pending.session("lead")
    try:
        [pending] = lead.directory.pending()
        assert (pending.username, pending.role, pending.key_generation) == (
            "drsmith",
            "clinician",
            1,
        )
        assert own is not None and pending.fingerprint == own.fingerprint
        assert len(pending.fingerprint.split()) == 6
        # Typed with hyphens and capitals: the words are what count.
        lead.directory.confirm("drsmith", pending.fingerprint.upper().replace(" ", "-"))
        assert lead.directory.pending() == []
        [confirmed] = events(lead, "key_confirmed")
        assert confirmed.actor == "lead" and confirmed.details["username"] == "drsmith"
        assert confirmed.details["clinical_generations"] == [1]
        clinical = lead.keys.clinical().reveal()
    finally:
        lead.close()
    smith = smith_pending.session("drsmith")
    try:
        keys = smith.keys
        assert keys.confirmed and keys.clinical().reveal() == clinical
        assert not keys.holds_lead_key
        assert [r.id for r in keys.recipients("drsmith")] == ["drsmith", LEAD_RECIPIENT]
        [pinned] = events(smith, "key_pinned")
        assert pinned.actor == "drsmith"
        # The pin is sealed in the bundle: the next session needs no trust on first grant.
        with smith.store.read() as tx:
            stored = tx.bundle("drsmith")
        assert stored is not None
        # On a practice server the bundle also needs the enrolment secret (None embedded).
        secret = smith.vault.enrolment_secret
        sealed = open_bundle(stored.sealed, PASSWORDS["drsmith"], keys.vault_id, "drsmith", secret)
        assert sealed.pinned_lead_signing_key == keys.pin
        assert smith.directory.own_key().confirmed
    finally:
        smith.close()
    again = smith_pending.session("drsmith")
    try:
        assert len(events(again, "key_pinned")) == 1
        assert again.keys.clinical().reveal() == clinical
        # Another confirmed user is an author recipient, verified against the pin.
        assert [r.id for r in again.keys.recipients("lead")] == ["drsmith", "lead", LEAD_RECIPIENT]
    finally:
        again.close()


def test_wrong_words_confirm_nothing_and_name_the_user(smith_pending):
    lead = smith_pending.session("lead")
    try:
        before = counts(lead)
        with pytest.raises(ValidationFailed, match="do not match the key drsmith published"):
            lead.directory.confirm("drsmith", "abandon ability able about above absent")
        assert counts(lead) == before
        assert [p.username for p in lead.directory.pending()] == ["drsmith"]
    finally:
        lead.close()


@pytest.mark.parametrize("who", ["admin", "drjones"])
def test_only_a_lead_may_confirm_and_a_refusal_is_audited(smith_pending, who):
    if who == "drjones":
        smith_pending.first_login("drjones", smith_pending.add("drjones"))
    smith = smith_pending.session("drsmith")
    words = smith.directory.own_key().fingerprint
    smith.close()
    session = smith_pending.session(who)
    try:
        before = counts(session)
        with pytest.raises(PermissionDenied, match="Not permitted for your role"):
            session.directory.confirm("drsmith", words)
        with pytest.raises(PermissionDenied):
            session.directory.pending()
        denied = events(session, "permission_denied")
        assert [e.details["attempted"] for e in denied[-2:]] == ["confirm_key", "confirm_key"]
        assert counts(session)[:3] == before[:3]
    finally:
        session.close()


def test_remembered_login_holds_no_lead_key_and_cannot_confirm(memory_keyring, smith_pending):
    # The keystore first: a practice server's enrolment secret is kept in it (the same
    # computer's keystore for the practice and the remembered login).
    lead = smith_pending.session("lead")
    lead.users.remember_login()
    lead.close()
    remembered = open_session_keyring(smith_pending.folder, "lead", smith_pending.clock)
    try:
        assert remembered.keys is not None and not remembered.keys.holds_lead_key
        # It works at clinician level: the bundle copy in the keyring slot, the clinical key.
        assert remembered.keys.confirmed and remembered.keys.clinical().generation == 1
        copy = Vault.open(smith_pending.folder).keyring_bundle("lead")
        assert copy is not None and PASSWORDS["lead"] not in str(copy)
        with pytest.raises(KeyNotHeld, match="typed their password"):
            remembered.keys.lead_keys()
        words = [p.fingerprint for p in remembered.directory.pending()]
        before = counts(remembered)
        with pytest.raises(KeyNotHeld):
            remembered.directory.confirm("drsmith", words[0])
        assert counts(remembered)[:3] == before[:3]
    finally:
        remembered.close()


def test_password_change_reseals_the_bundle_with_the_same_keys(smith_pending):
    confirm_smith(smith_pending)
    smith = smith_pending.session("drsmith")
    try:
        public = raw_public(smith.keys.user_keys.encryption)
        smith.users.change_password(PASSWORDS["drsmith"], "a fresh orchard lantern")
        assert raw_public(smith.keys.user_keys.encryption) == public
        assert smith.keys.confirmed and smith.keys.clinical().generation == 1
        with smith.store.read() as tx:
            stored = tx.bundle("drsmith")
        assert stored is not None and stored.sealed.generation == 1
        assert rows(smith, "SELECT count(*) FROM directory WHERE user_id = 'drsmith'") == [(2,)]
    finally:
        smith.close()
    again = smith_pending.session("drsmith", "a fresh orchard lantern")
    try:
        assert raw_public(again.keys.user_keys.encryption) == public
        assert again.keys.clinical().generation == 1
    finally:
        again.close()


def _wrap_an_object_for_smith_and_lead(v2: V2) -> tuple[ObjectKey, bytes]:
    """What step 4's writer will do for drsmith's answers: wrap one object key for the writer
    (drsmith, key generation 1) and the lead key, through the port."""
    smith = v2.session("drsmith")
    try:
        keys = smith.keys
        object_key = ObjectKey.generate()
        made = []
        for recipient in keys.recipients("drsmith"):
            binding = WrapBinding.for_object(
                keys.vault_id, "answers", "SG-TEST-0001", recipient.id, recipient.generation
            )
            blob = wrap_key(object_key, recipient.public_key, binding)
            made.append(
                ObjectWrap(
                    "answers", "SG-TEST-0001", recipient.id, recipient.generation, blob, "now"
                )
            )
        with smith.store.write(smith_audit("object_wrapped")) as tx:
            tx.add_object_wraps(made)
        return object_key, commitment(keys.vault_id, "SG-TEST-0001", object_key)
    finally:
        smith.close()


def smith_audit(action: str):  # type: ignore[no-untyped-def]
    from gpshare.store.port import AuditEntry

    return AuditEntry("drsmith", action)


def test_reset_makes_the_bundle_inert_and_nothing_is_wrapped_before_confirmation(smith_pending):
    v2 = smith_pending
    confirm_smith(v2)
    object_key, commit = _wrap_an_object_for_smith_and_lead(v2)
    admin = v2.session("admin")
    temp = admin.users.reset_password("drsmith")
    try:
        [(state,)] = rows(admin, "SELECT state FROM key_bundles WHERE user_id = 'drsmith'")
        assert state == "inert"
    finally:
        admin.close()
    v2.first_login("drsmith", temp)

    def for_new_key(session: Session) -> tuple[int, int]:
        [(role,)] = rows(
            session,
            "SELECT count(*) FROM role_key_wraps WHERE recipient = 'drsmith' "
            "AND recipient_generation = 2",
        )
        [(objects,)] = rows(
            session,
            "SELECT count(*) FROM object_wraps WHERE recipient = 'drsmith' "
            "AND recipient_generation = 2",
        )
        return role, objects

    smith = v2.session("drsmith")
    try:
        assert smith.keys.own_generation == 2 and not smith.keys.confirmed
        states = rows(smith, "SELECT generation, state FROM key_bundles WHERE user_id = 'drsmith'")
        assert sorted(states) == [(1, "inert"), (2, "active")]
        with pytest.raises(KeyNotHeld):
            smith.keys.open_object_key(
                "answers", "SG-TEST-0001", commit, [("drsmith", 1, b"x"), ("lead", 1, b"y")]
            )
        words = smith.directory.own_key().fingerprint
        assert for_new_key(smith) == (0, 0)
    finally:
        smith.close()
    # The old password still opens the inert bundle (nothing is lost by a reset).
    lead = v2.session("lead")
    try:
        with lead.store.read() as tx:
            inert = tx.bundle("drsmith", 1)
        assert isinstance(inert, StoredBundle)
        secret = lead.vault.enrolment_secret  # a practice server's (None embedded)
        open_bundle(inert.sealed, PASSWORDS["drsmith"], lead.keys.vault_id, "drsmith", secret)
        assert for_new_key(lead) == (0, 0)
        with pytest.raises(ValidationFailed):
            lead.directory.confirm("drsmith", "wrong words entirely here now please")
        assert for_new_key(lead) == (0, 0)
        lead.directory.confirm("drsmith", words)
        assert for_new_key(lead) == (1, 1)
    finally:
        lead.close()
    smith = v2.session("drsmith")
    try:
        with smith.store.read() as tx:
            wraps = tx.object_wraps_for("drsmith", [("answers", "SG-TEST-0001")])
        found = [(w.recipient, w.recipient_generation, w.wrap) for w in wraps]
        opened = smith.keys.open_object_key("answers", "SG-TEST-0001", commit, found)
        assert opened.reveal() == object_key.reveal()
    finally:
        smith.close()


# ----- an altered directory -----------------------------------------------------------------


def _swap_public_key(session: Session, where: str) -> None:
    """Edit a directory entry's public key as the database's administrator would."""
    if session.vault.engine == "postgres":
        with raw_connection(session) as dba:  # the server's superuser in these tests
            dba.execute("SET session_replication_role = replica")  # triggers off
            dba.execute(f"UPDATE directory SET public_key = %s WHERE {where}", (b"\x07" * 32,))
        return
    conn = raw_connection(session)
    conn.execute("DROP TRIGGER directory_append_only")
    conn.execute(f"UPDATE directory SET public_key = ? WHERE {where}", (b"\x07" * 32,))
    conn.commit()


def test_a_swapped_user_key_is_refused_and_nothing_is_wrapped(smith_pending):
    v2 = smith_pending
    confirm_smith(v2)
    v2.first_login("drjones", v2.add("drjones"))
    v2.session("drsmith").close()  # pins the lead signing key
    lead = v2.session("lead")
    before = counts(lead)
    _swap_public_key(lead, "user_id = 'drsmith' AND signature IS NOT NULL")
    try:
        with pytest.raises(DirectoryAlteredError, match="key directory has been altered"):
            lead.keys.recipients("drsmith")
        assert counts(lead)[1:3] == before[1:3]
    finally:
        lead.close()
    # drsmith's own client refuses its altered entry at unlock.
    with pytest.raises(DirectoryAlteredError):
        v2.session("drsmith")


def test_a_swapped_lead_key_entry_is_refused(smith_pending):
    v2 = smith_pending
    confirm_smith(v2)
    lead = v2.session("lead")
    _swap_public_key(lead, "kind = 'lead-key'")
    lead.close()
    smith = v2.session("drsmith")
    try:
        with pytest.raises(DirectoryAlteredError, match="lead key entry"):
            smith.keys.recipients("drsmith")
    finally:
        smith.close()


# ----- version 1 is unchanged ---------------------------------------------------------------


def test_a_version_1_vault_has_no_key_ring(vault_env):
    lead = vault_env.session("lead")
    try:
        assert lead.keys is None
        with pytest.raises(ServiceError, match="version 1"):
            lead.directory.pending()
        assert rows(lead, "SELECT count(*) FROM directory") == [(0,)]
    finally:
        lead.close()


def test_fingerprint_words_are_the_directory_primitive(smith_pending):
    smith = smith_pending.session("drsmith")
    try:
        public = raw_public(smith.keys.user_keys.encryption)
        assert smith.directory.own_key().fingerprint == " ".join(
            fingerprint(public, smith.keys.vault_id)
        )
    finally:
        smith.close()


def test_a_clinicians_remembered_login_keeps_their_keys_across_a_password_change(
    memory_keyring,
    smith_pending,  # the keystore first: the enrolment secret is kept there
):
    confirm_smith(smith_pending)
    smith = smith_pending.session("drsmith")
    smith.users.remember_login()
    smith.users.change_password(PASSWORDS["drsmith"], "a fresh orchard lantern")
    smith.close()
    remembered = open_session_keyring(smith_pending.folder, "drsmith", smith_pending.clock)
    try:
        assert remembered.keys.confirmed and remembered.keys.clinical().generation == 1
        assert remembered.keys.pin is not None
    finally:
        remembered.close()
    assert not remembered.keys.confirmed and remembered.keys.user_keys is None  # dropped


def test_an_unpinned_swapped_entry_of_the_users_own_generation_is_refused(smith_pending):
    confirm_smith(smith_pending)
    lead = smith_pending.session("lead")
    _swap_public_key(lead, "user_id = 'drsmith' AND signature IS NOT NULL")
    lead.close()
    # Before the pin is set, a signed entry for the user's key generation that holds another
    # key is refused rather than silently treated as "not confirmed".
    with pytest.raises(DirectoryAlteredError):
        smith_pending.session("drsmith")


# ----- step 5, decision D2: the lead-access pair ---------------------------------------------


def test_a_leads_published_key_carries_a_signed_lead_access_key(smith_pending):
    """A lead's bundle holds a lead-access pair whose public key their directory entry
    publishes; the entry is signed with it and the lead key is wrapped for it alone; a clinician's entry has
    none."""
    lead = smith_pending.session("lead")
    try:
        vault_id = lead.vault.vault_id
        with lead._read() as tx:
            first_lead = tx.directory_entries("lead", "user")[-1]
            smith = tx.directory_entries("drsmith", "user")[-1]
            stored = tx.bundle("lead")
            wraps = tx.role_key_wraps("lead", "lead")
        assert first_lead.lead_access_key is not None and smith.lead_access_key is None
        assert stored is not None
        secret = lead.vault.enrolment_secret  # a practice server's (None embedded)
        own = open_bundle(stored.sealed, PASSWORDS["lead"], vault_id, "lead", secret)
        assert own.lead_access is not None
        assert raw_public(own.lead_access) == first_lead.lead_access_key
        for wrap in wraps:
            unwrap_key(wrap.wrap, own.lead_access, wrap.binding(vault_id))
            with pytest.raises(UnwrapError):
                unwrap_key(wrap.wrap, own.encryption, wrap.binding(vault_id))
        # Editing the published lead-access key breaks the entry's signature.
        from dataclasses import replace as swap

        from gpshare.store.keys.directory import verify_entry

        forged = swap(first_lead, lead_access_key=bytes(32))
        assert own.pinned_lead_signing_key is not None
        with pytest.raises(DirectoryAlteredError):
            verify_entry(forged.signed(vault_id), own.pinned_lead_signing_key, vault_id)
    finally:
        lead.close()


def test_pkcs12_import_is_a_reset_so_the_next_login_publishes_a_new_key(smith_pending):
    """Importing a .p12 gives the user a one-time password, as a reset does: their bundle goes
    inert, so their next sign-in publishes a new pending key instead of being refused as a
    bundle that does not open (tests/test_attacks_offline.py, swapped pin)."""
    from gpshare import signing

    v2 = smith_pending
    confirm_smith(v2)
    now = v2.clock.now()
    other_ca = signing.create_practice_ca("NHS Example Smartcard CA", now)
    issued = signing.issue_user_certificate(
        other_ca, full_name="Dr Alex Smith", username="drsmith", role="GP",
        gmc_number="1234567", practice_name="Canal Street Surgery", now=now,
    )  # fmt: skip
    p12 = signing.export_pkcs12(issued, b"p12-secret", other_ca.cert_pem)
    admin = v2.session("admin")
    try:
        temp = admin.users.import_pkcs12("drsmith", p12, "p12-secret")
        [(state,)] = rows(admin, "SELECT state FROM key_bundles WHERE user_id = 'drsmith'")
        assert state == "inert"
    finally:
        admin.close()
    v2.first_login("drsmith", temp)
    smith = v2.session("drsmith")
    try:
        assert smith.keys is not None
        assert smith.keys.own_generation == 2 and not smith.keys.confirmed
    finally:
        smith.close()
