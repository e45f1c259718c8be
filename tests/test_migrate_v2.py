"""The in-place v1 → v2 migration (docs/vault-v2.md §4, decisions D3–D6): what every role can
do afterwards, that nothing is lost, that an interrupted or failed upgrade is finished or
undone, and that the admin's copy no longer holds narrative."""

from __future__ import annotations

import errno
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gpshare.errors import KeyNotHeld, PermissionDenied, StoreError, ValidationFailed
from gpshare.services import migrate_v2 as mig
from gpshare.services import open_session
from gpshare.services.migrate_v2 import LeadAtMigration, migrate_vault
from gpshare.store import backup
from gpshare.store import migrate_v2 as files
from gpshare.store.errors import CorruptDatabaseError
from gpshare.store.vault import Vault
from tests.conftest import PASSWORDS, SCENARIOS, VaultEnv, make_vault

FIXTURE = Path(__file__).parent / "fixtures" / "vault-v1"
FIXTURE_PASSWORD = "fixture-password-1"
MARKER = "Quetzalcoatl-marker"


@dataclass
class Rich:
    """A v1 vault made by this code, and what it held before the upgrade."""

    env: VaultEnv
    done_id: str  # drsmith's completed referral with letter, addendum, follow-up, review
    sibling_id: str  # drjones's completed record for a sibling (same household)
    draft_id: str  # drsmith's draft
    letter_pdf: bytes
    before: dict[str, Any]


def _answers(name: str) -> dict[str, Any]:
    data = json.loads((SCENARIOS / "01-bruised-toddler-parents-agree.json").read_text())
    answers = dict(data["answers"])
    answers["concern_narrative"] = f"{answers.get('concern_narrative', '')} {MARKER}"
    answers["child_given_name"] = name
    return answers


def _snapshot(env: VaultEnv, done_id: str) -> dict[str, Any]:
    """What each role sees before (and must see after) the upgrade."""
    lead = env.session("lead")
    try:
        chronology, links = lead.lead.child_chronology(done_id)
        dash = lead.lead.dashboard()
        return {
            "records": sorted(
                (r.id, r.status, r.clinician, r.child.given_name)
                for r in lead.assessments.list_records()
            ),
            "outcome": lead.assessments.get_record(done_id).outcome,
            "addenda": [a.body for a in lead.assessments.addenda(done_id)],
            "followups": [(f.event, f.note) for f in lead.referrals.followups(done_id)],
            "reviews": [(r.verdict, r.comments) for r in lead.referrals.reviews(done_id)],
            "chronology": [(e.record_id, e.kind) for e in chronology],
            "links": sorted(link.record_id for link in links),
            "dashboard": (dash.completed, dash.by_pathway, dash.by_consent),
            "letters": [m.sha256 for m in lead.letters.list_letters(done_id)],
        }
    finally:
        lead.close()


def _rich(folder: Path, clock: Any) -> Rich:
    env = make_vault(folder, clock)
    s = env.session("drsmith")
    record = s.assessments.start_assessment(answers=_answers("Mia"))
    done, _ = s.assessments.complete(record.id)
    letter = s.letters.generate_letter(done.id, PASSWORDS["drsmith"])
    s.assessments.add_addendum(done.id, f"Later fact {MARKER}.")
    s.referrals.record_followup(done.id, "sent", note=f"Sent by secure email {MARKER}")
    draft = s.assessments.start_assessment(answers={"child_given_name": "Leo"})
    s.close()
    s = env.session("drjones")
    # Same carers and address, so the lead sees a household link to review; the same family
    # name and birth date also make it an earlier record of "the same child" to acknowledge.
    sibling = s.assessments.start_assessment(
        answers={**_answers("Noah"), "prior_concerns_acknowledged": True}
    )
    try:
        sibling_done, _ = s.assessments.complete(sibling.id)
    except ValidationFailed as exc:
        raise AssertionError(exc.errors) from exc
    s.close()
    lead = env.session("lead")
    lead.referrals.add_review(done.id, "reasonable", f"Sound {MARKER}", "none")
    _entries, links = lead.lead.child_chronology(done.id)
    for link in links:
        lead.lead.review_household_link(done.id, link.record_id, "same_household", MARKER)
    lead.close()
    admin = env.session("admin")
    admin.backups.backup_now()  # an older snapshot, which D3 must rekey too
    admin.close()
    env.clock.advance(60)
    return Rich(env, done.id, sibling_done.id, draft.id, letter.pdf, _snapshot(env, done.id))


@pytest.fixture
def rich(tmp_path: Path, clock: Any) -> Rich:
    return _rich(tmp_path / "vault", clock)


def _migrate(env: VaultEnv, **kw: Any) -> mig.Migrated:
    return migrate_vault(env.folder, "admin", PASSWORDS["admin"], clock=env.clock, **kw)


def _confirm_all(env: VaultEnv, users: list[str]) -> None:
    """Each user signs in (their client publishes a pending key); the lead confirms the words."""
    words = {}
    for name in users:
        s = env.session(name)
        try:
            own = s.directory.own_key()
            assert own is not None and not own.confirmed
            words[name] = own.fingerprint
        finally:
            s.close()
    lead = env.session("lead")
    try:
        for name, typed in words.items():
            lead.directory.confirm(name, typed)
    finally:
        lead.close()


def test_rich_vault_migrates_and_every_role_reads_what_it_read_before(rich: Rich) -> None:
    env = rich.env
    done = _migrate(env, lead=LeadAtMigration("lead", PASSWORDS["lead"]))
    assert Vault.open(env.folder).format_version == 2
    assert done.lead == "lead" and done.breakglass_code
    assert done.counts["records"] == 3 and done.counts["letters"] == 1
    assert not (env.folder / files.MIGRATING_DB).exists()
    assert not (env.folder / files.JOURNAL_NAME).exists()
    # The lead (appointed by the migration, D5) sees the same lists, chronology and dashboard.
    assert _snapshot(env, rich.done_id) == rich.before
    # The admin signs in; clinicians too, with pending keys until the lead confirms them.
    admin = env.session("admin")
    try:
        assert admin.keys is not None  # a v2 session, with the bundle the upgrade made
        assert admin.directory.own_key() is not None
    finally:
        admin.close()
    s = env.session("drsmith")
    try:
        with pytest.raises(Exception, match="confirm"):
            s.assessments.get_record(rich.done_id)  # unreadable until the lead confirms (H-37)
    finally:
        s.close()
    _confirm_all(env, ["drsmith", "drjones"])
    s = env.session("drsmith")
    try:
        record = s.assessments.get_record(rich.done_id)
        assert MARKER in record.answers["concern_narrative"]
        assert [a.body for a in s.assessments.addenda(rich.done_id)] == rich.before["addenda"]
        assert s.assessments.get_record(rich.draft_id).child.given_name == "Leo"
        # The author still signs letters: the certificate was re-issued by the new CA (D6).
        again = s.letters.generate_letter(rich.done_id, PASSWORDS["drsmith"])
        result, match = s.letters.verify_letter(again.pdf)
        assert result.ok and match is not None
    finally:
        s.close()
    # A letter signed before the migration still verifies (the old CA is a trusted issuer).
    lead = env.session("lead")
    try:
        result, match = lead.letters.verify_letter(rich.letter_pdf)
        assert result.ok and match is not None and match.record_id == rich.done_id
    finally:
        lead.close()


def test_the_chain_verifies_across_the_migration(rich: Rich) -> None:
    env = rich.env
    _migrate(env)
    s = env.session("admin")
    try:
        with s._read() as tx:
            report = tx.verify_audit(s.vault.audit_head())
            events = tx.audit_events_after(0)
        assert report.ok, report.summary()
        assert [e.action for e in events].count("vault_migrated") == 1
        # Every row the migration sealed is named by an event, so the rows-against-events
        # verify (DESIGN §10.3) finds nothing on a freshly upgraded vault.
        rows = s.audit_trail.verify_integrity()
        assert rows.ok, [str(f) for f in rows.findings]
    finally:
        s.close()


def test_the_committed_v1_fixture_migrates_and_a_ceremony_appoints_its_lead(
    tmp_path: Path, clock: Any
) -> None:
    # Schema 1 as v1 wrote it: the migration's own v1 unlock applies 0002–0009 first. No lead
    # is present, so every object key is wrapped for the lead key g1 only and the first lead
    # is appointed by the break-glass ceremony (the exception).
    folder = tmp_path / "vault"
    shutil.copytree(FIXTURE, folder)
    s = open_session(folder, "lead", FIXTURE_PASSWORD, clock)
    before = sorted((r.id, r.status, r.child.given_name) for r in s.assessments.list_records())
    s.close()
    clock.advance(60)  # the schema upgrade took a snapshot at this fixed time
    done = migrate_vault(folder, "admin", FIXTURE_PASSWORD, clock=clock)
    assert done.lead is None and done.counts["records"] == len(before) == 2
    lead = open_session(folder, "lead", FIXTURE_PASSWORD, clock)  # publishes a pending key
    try:
        assert lead.keys is not None and not lead.keys.holds_lead_key
        with pytest.raises(KeyNotHeld):
            lead.assessments.get_record(before[0][0])
    finally:
        lead.close()
    admin = open_session(folder, "admin", FIXTURE_PASSWORD, clock)
    try:
        admin.breakglass.ceremony(done.breakglass_code, "lead", "no lead at the v2 upgrade")
    finally:
        admin.close()
    lead = open_session(folder, "lead", FIXTURE_PASSWORD, clock)
    try:
        after = sorted(
            (r.id, r.status, r.child.given_name) for r in lead.assessments.list_records()
        )
        assert after == before
    finally:
        lead.close()


def test_only_an_administrator_can_upgrade_and_a_v2_vault_is_not_upgraded_twice(
    rich: Rich,
) -> None:
    env = rich.env
    with pytest.raises(PermissionDenied, match="administrator"):
        migrate_vault(env.folder, "lead", PASSWORDS["lead"], clock=env.clock)
    with pytest.raises(ValidationFailed, match="drsmith"):
        _migrate(env, lead=LeadAtMigration("drsmith", PASSWORDS["drsmith"]))
    assert Vault.open(env.folder).format_version == 1
    _migrate(env)
    with pytest.raises(ValidationFailed, match="already version 2"):
        _migrate(env)


def test_old_backups_no_longer_open_with_the_practice_key(rich: Rich) -> None:
    env = rich.env
    old = [b.path for b in backup.list_backups(Vault.open(env.folder))]
    assert old
    for snapshot in old:
        backup.check_backup(snapshot, _v1_key(env))  # a v1 snapshot, under the practice key
    done = _migrate(env)
    # Every older snapshot and the migration's own are rekeyed.
    assert {p.name for p in old} < set(
        done.legacy_backups
    ) and done.backup.name in done.legacy_backups
    old.append(done.backup)
    admin = env.session("admin")
    try:
        practice = admin.db_key
        for snapshot in old:
            for key in (practice, _v1_key(env)):
                with pytest.raises(CorruptDatabaseError):
                    backup.check_backup(snapshot, key)
            assert not (snapshot / files.REKEYED_DB).exists()
        with admin._read() as tx:
            wraps = {(w.object_id, w.recipient) for w in tx.object_wraps_for("#breakglass")}
        # Each legacy-backup key is wrapped for the break-glass key (and the lead key).
        assert {(p.name, "#breakglass") for p in old} <= wraps
        # A backup taken after the upgrade is a v2 one and verifies.
        env.clock.advance(60)
        fresh = admin.backups.backup_now()
        backup.check_backup(fresh, practice)
    finally:
        admin.close()


def _v1_key(env: VaultEnv) -> bytes:
    """The v1 database key (= the practice key's raw bytes), from the recovery code."""
    vault = Vault.open(env.folder)
    key = vault.unlock_with_recovery(env.recovery_code, env.clock)
    return key.practice.reveal() if hasattr(key, "practice") else key


@pytest.mark.parametrize("state", ["backup", "building"])
def test_a_migration_killed_before_swapping_is_undone_at_the_next_open(
    rich: Rich, state: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = rich.env
    # A kill leaves everything as it was at that moment: no clean-up runs.
    monkeypatch.setattr(files, "undo", lambda folder: None)
    target = (backup, "check_backup") if state == "backup" else (files, "rekey_snapshots")

    def killed(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(*target, killed)
    with pytest.raises(KeyboardInterrupt):
        _migrate(env)
    assert json.loads((env.folder / files.JOURNAL_NAME).read_text())["state"] == state
    if state == "building":
        assert (env.folder / files.MIGRATING_DB).exists()
    monkeypatch.undo()
    assert mig.finish_interrupted_migration(env.folder) == "undone"
    assert not (env.folder / files.MIGRATING_DB).exists()
    assert Vault.open(env.folder).format_version == 1
    assert _snapshot(env, rich.done_id) == rich.before


def test_a_migration_killed_while_swapping_is_finished_at_the_next_open(
    rich: Rich, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = rich.env
    real = files._roll_forward

    def half(folder: Path) -> None:
        # Only the snapshots are swapped before the kill.
        monkeypatch.setattr(files, "_roll_forward", real)
        raise KeyboardInterrupt("killed mid-swap")

    monkeypatch.setattr(files, "_roll_forward", half)
    with pytest.raises(KeyboardInterrupt):
        _migrate(env, lead=LeadAtMigration("lead", PASSWORDS["lead"]))
    assert json.loads((env.folder / files.JOURNAL_NAME).read_text())["state"] == "swapping"
    assert Vault.open(env.folder).format_version == 1  # nothing swapped yet
    # The next open (here the lead's) rolls it forward.
    assert _snapshot(env, rich.done_id) == rich.before
    assert Vault.open(env.folder).format_version == 2
    assert not (env.folder / files.JOURNAL_NAME).exists()


def test_a_full_disk_leaves_the_v1_vault_untouched_and_opening(
    rich: Rich, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = rich.env
    header = (env.folder / "vault.json").read_bytes()

    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "reencrypt_snapshot", full)  # while re-encrypting backups
    with pytest.raises(StoreError, match="left as it was"):
        _migrate(env)
    assert not (env.folder / files.JOURNAL_NAME).exists()
    assert not (env.folder / files.MIGRATING_DB).exists()
    assert not list(env.folder.glob("backups/*/" + files.REKEYED_DB))
    assert json.loads((env.folder / "vault.json").read_bytes())["format_version"] == 1
    assert (
        json.loads(header)["slots"] == json.loads((env.folder / "vault.json").read_bytes())["slots"]
    )
    assert _snapshot(env, rich.done_id) == rich.before


def test_the_admins_copy_of_a_migrated_vault_holds_no_narrative(rich: Rich) -> None:
    # The insider of tests/test_attacks_offline.py: the admin's password and the recovery code
    # reach the practice key, which opens records.db; no decoded value holds the marker, and
    # nothing they hold opens a role key.
    from tests.test_attacks_offline import (
        every_role_wrap,
        insider_store,
        keys_from_practice_key,
        opens,
        own_bundle,
    )

    env = rich.env
    _migrate(env)
    admin = env.session("admin")  # the admin's first v2 sign-in: bundle exists already
    admin.close()
    vault = Vault.open(env.folder)
    by_code = vault.unlock_with_recovery(env.recovery_code, env.clock)
    with insider_store(env.folder, by_code, env.clock) as store:
        conn = store.connection  # type: ignore[attr-defined]
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    text = (
                        value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                    )
                    assert MARKER not in text and "Mia" not in text, f"{table} leaks"
        admin_keys = own_bundle(store, vault.vault_id, "admin")
        attempts = [admin_keys.encryption, *keys_from_practice_key(by_code, vault.vault_id)]
        for wrap in every_role_wrap(store):
            assert not any(opens(wrap, key, vault.vault_id) for key in attempts)
    for path in env.folder.rglob("*"):
        if path.is_file():
            assert MARKER.encode() not in path.read_bytes(), path


def test_cli_migrate_v2_upgrades_appoints_the_lead_and_old_letters_still_verify(
    rich: Rich, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from gpshare.cli import main

    env = rich.env
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["admin"])
    monkeypatch.setenv("GPSHARE_LEAD_PASSWORD", PASSWORDS["lead"])
    # The CLI's clock is the system clock: the fixture's snapshots are in the past.
    code = main(
        ["migrate-v2", "--vault", str(env.folder), "--user", "admin", "--lead", "lead", "--json"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["format_version"] == 2 and result["lead"] == "lead"
    assert result["breakglass_code"] and result["counts"]["records"] == 3
    assert Vault.open(env.folder).format_version == 2
    # A second run says there is nothing to do, and a v1 letter still says valid.
    assert main(["migrate-v2", "--vault", str(env.folder), "--user", "admin"]) != 0
    assert "already version 2" in capsys.readouterr().err
    letter = tmp_path / "old-letter.pdf"
    letter.write_bytes(rich.letter_pdf)
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["lead"])
    code = main(["verify-letter", str(letter), "--vault", str(env.folder), "--user", "lead"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "valid" in out.lower()
