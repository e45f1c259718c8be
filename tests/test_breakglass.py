"""The break-glass ceremony (docs/vault-v2.md §3 "Break-glass ceremony"), its banner and
acknowledgements, and the last-lead notice: through the service and through the CLI."""

from __future__ import annotations

import json
import os
from contextlib import closing
from pathlib import Path

import pytest

from gpshare.cli import main
from gpshare.demo import add_new_user, choose_own_password
from gpshare.errors import KeyNotHeld, PermissionDenied, ValidationFailed
from gpshare.services import open_session
from gpshare.services.record_keys import LEAD_RECIPIENT
from gpshare.store.errors import WrongPasswordError
from gpshare.store.keys.binding import ObjectKey
from gpshare.store.keys.wraps import WrapBinding, commitment, wrap_key
from gpshare.store.vault import Vault
from tests.conftest import PASSWORDS, VaultEnv

REASON = "Dr Natarajan is on long-term sick leave and two referrals need a lead today"
NEW_LEAD = ("newlead", "newlead-password-1")


def add_lead(env: VaultEnv, username: str = NEW_LEAD[0], sign_in: bool = True) -> None:
    """An admin adds a user with the lead role; with `sign_in` they choose their password, so
    their client publishes a (pending) key."""
    with closing(env.session("admin")) as admin:
        first = add_new_user(admin, username, "Dr Ada Newlead", "lead", "3456789")
    if sign_in:
        choose_own_password(env.folder, env.clock, username, first, NEW_LEAD[1])


def counts(session) -> tuple[int, int, int, int]:  # type: ignore[no-untyped-def]
    """Rows of the tables a ceremony writes, and the audit head."""
    with session._read() as tx:
        return (
            len(tx.directory_entries()),
            len(tx.role_key_wraps()),
            tx.audit_head().seq,
            len(tx.list_users()),
        )


def lead_object(env: VaultEnv) -> tuple[ObjectKey, bytes, bytes, int, str]:
    """drsmith wraps an object key for the current lead public key (as a record's answers
    key is): (key, commitment, wrap, lead generation, vault id)."""
    with closing(env.session("drsmith")) as smith:
        assert smith.keys is not None
        lead = smith.keys.lead_recipient()
        vault_id = smith.vault.vault_id
    key = ObjectKey.generate()
    binding = WrapBinding.for_object(
        vault_id, "record", "SG-TEST-0001", LEAD_RECIPIENT, lead.generation
    )
    blob = wrap_key(key, lead.public_key, binding)
    return key, commitment(vault_id, "SG-TEST-0001", key), blob, lead.generation, vault_id


def open_as(env: VaultEnv, username: str, password: str, obj) -> bytes:  # type: ignore[no-untyped-def]
    key, commit, blob, generation, _vid = obj
    with closing(open_session(env.folder, username, password, env.clock)) as s:
        assert s.keys is not None
        found = s.keys.open_object_key(
            "record", "SG-TEST-0001", commit, [(LEAD_RECIPIENT, generation, blob)]
        )
        return found.reveal()


def test_ceremony_grants_the_lead_key_and_the_grantee_opens_lead_records(vault_env_v2):
    env = vault_env_v2
    add_lead(env)
    obj = lead_object(env)
    with pytest.raises(KeyNotHeld):  # before: a pending key holds nothing
        open_as(env, *NEW_LEAD, obj)
    with closing(env.session("admin")) as admin:
        done = admin.breakglass.ceremony(env.breakglass_code, "newlead", REASON)
    assert done.grantee == "newlead" and done.lead_generations == (1,)
    assert done.clinical_generations == (1,) and done.new_code != env.breakglass_code
    with closing(open_session(env.folder, *NEW_LEAD, env.clock)) as s:
        assert s.keys is not None and s.keys.holds_lead_key and s.keys.confirmed
        own = s.directory.own_key()
        assert own is not None and own.fingerprint == done.fingerprint
    assert open_as(env, *NEW_LEAD, obj) == open_as(env, "lead", PASSWORDS["lead"], obj)
    with pytest.raises(KeyNotHeld):  # a clinician still cannot (control)
        open_as(env, "drjones", PASSWORDS["drjones"], obj)


def test_old_code_no_longer_opens_the_slot_and_the_new_one_does(vault_env_v2):
    env = vault_env_v2
    add_lead(env)
    with closing(env.session("admin")) as admin:
        done = admin.breakglass.ceremony(env.breakglass_code, "newlead", REASON)
    vault = Vault.open(env.folder)
    with pytest.raises(WrongPasswordError):
        vault.open_breakglass(env.breakglass_code, env.clock)
    env.clock.advance(3600)  # past the back-off of that failure
    private = vault.open_breakglass(done.new_code, env.clock)
    assert private.public_key().public_bytes_raw() == vault.breakglass_public_key()
    # The new code opens every role key again: a second ceremony with it works.
    add_lead(env, "thirdlead")
    with closing(env.session("admin")) as admin:
        again = admin.breakglass.ceremony(done.new_code, "thirdlead", REASON)
    # The first ceremony rotated the clinical key (g2, wrapped for the new code too).
    assert again.lead_generations == (1,) and again.clinical_generations == (1, 2)


def test_wrong_code_writes_nothing_and_is_counted_like_a_failed_unlock(vault_env_v2):
    env = vault_env_v2
    add_lead(env)
    header_before = json.loads((env.folder / "vault.json").read_text())["slots"]
    with closing(env.session("admin")) as admin:
        before = counts(admin)
        with pytest.raises(WrongPasswordError, match="break-glass code does not open"):
            admin.breakglass.ceremony("AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH", "newlead", REASON)
        assert counts(admin) == before
        assert admin.vault.retry_after("breakglass", env.clock) > 0
    assert json.loads((env.folder / "vault.json").read_text())["slots"] == header_before
    env.clock.advance(3600)
    admin = env.session("admin")  # the next unlock reports the failure in the chain
    try:
        events = admin.audit_trail.audit_log()
        failed = [e for e in events if e.action == "unlock_failed"]
        assert failed and failed[0].details["reason"] == "wrong break-glass code"
        assert not [e for e in events if e.action == "breakglass_used"]
    finally:
        admin.close()
    with closing(open_session(env.folder, *NEW_LEAD, env.clock)) as s:
        assert s.keys is not None and not s.keys.holds_lead_key


def test_user_without_a_key_or_the_lead_role_is_refused_with_the_reason(vault_env_v2):
    env = vault_env_v2
    add_lead(env, "nokey", sign_in=False)
    with closing(env.session("admin")) as admin:
        before = counts(admin)
        with pytest.raises(ValidationFailed, match="nokey has no key yet: they must sign in"):
            admin.breakglass.ceremony(env.breakglass_code, "nokey", REASON)
        with pytest.raises(ValidationFailed, match="not a safeguarding lead.*--role lead"):
            admin.breakglass.ceremony(env.breakglass_code, "drsmith", REASON)
        with pytest.raises(ValidationFailed, match="reason for using the break-glass code"):
            admin.breakglass.ceremony(env.breakglass_code, "nokey", "   ")
        with pytest.raises(ValidationFailed, match="not an active user"):
            admin.breakglass.ceremony(env.breakglass_code, "nobody", REASON)
        assert counts(admin) == before
        assert admin.vault.retry_after("breakglass", env.clock) == 0  # the code was not tried


def test_wrong_fingerprint_writes_nothing(vault_env_v2):
    env = vault_env_v2
    add_lead(env)
    with closing(env.session("admin")) as admin:
        before = counts(admin)
        with pytest.raises(ValidationFailed, match="do not match the key newlead published"):
            admin.breakglass.ceremony(
                env.breakglass_code, "newlead", REASON, "one two three four five six"
            )
        assert counts(admin) == before


def test_only_an_admin_runs_the_ceremony(vault_env_v2):
    env = vault_env_v2
    add_lead(env)
    with closing(env.session("lead")) as lead, pytest.raises(PermissionDenied):
        lead.breakglass.ceremony(env.breakglass_code, "newlead", REASON)


def test_breakglass_used_is_in_the_chain_and_audit_verifies(vault_env_v2):
    env = vault_env_v2
    add_lead(env)
    with closing(env.session("admin")) as admin:
        admin.breakglass.ceremony(env.breakglass_code, "newlead", REASON)
        used = [e for e in admin.audit_trail.audit_log() if e.action == "breakglass_used"]
        assert len(used) == 1
        assert used[0].actor == "admin"
        assert used[0].details["grantee"] == "newlead" and used[0].details["reason"] == REASON
        assert env.breakglass_code not in json.dumps(used[0].details)
        assert admin.audit_trail.verify_audit().ok


def test_banner_shows_to_leads_and_admins_until_two_different_users_ack(vault_env_v2):
    env = vault_env_v2
    add_lead(env)
    with closing(env.session("admin")) as admin:
        assert admin.breakglass.notice() is None
        admin.breakglass.ceremony(env.breakglass_code, "newlead", REASON)
        notice = admin.breakglass.notice()
        assert notice is not None and notice.still_needed == 2
        assert "admin granted the safeguarding lead key to newlead" in notice.text()
        assert REASON in notice.text()
    with closing(env.session("drsmith")) as smith, pytest.raises(PermissionDenied):
        smith.breakglass.notice()
    with closing(env.session("lead")) as lead:
        assert lead.breakglass.notice() is not None
        left = lead.breakglass.acknowledge()
        assert left is not None and left.acknowledged_by == ("lead",) and left.still_needed == 1
        with pytest.raises(ValidationFailed, match="already acknowledged"):
            lead.breakglass.acknowledge()  # one user twice is not two users
        assert lead.breakglass.notice() is not None
    with closing(env.session("admin")) as admin:
        assert admin.breakglass.notice() is not None
        assert admin.breakglass.acknowledge() is None
        assert admin.breakglass.notice() is None
        acks = [e for e in admin.audit_trail.audit_log() if e.action == "breakglass_acknowledged"]
        assert sorted(e.actor for e in acks) == ["admin", "lead"]
        with pytest.raises(Exception, match="no break-glass use waiting"):
            admin.breakglass.acknowledge()


def test_last_lead_notice_asks_for_a_second_then_names_the_ceremony(vault_env_v2):
    env = vault_env_v2
    with closing(env.session("admin")) as admin:
        cover = admin.breakglass.lead_cover()
        assert cover is not None and cover.holders == ("lead",)
        assert cover.message is not None and "Appoint a second lead" in cover.message
        admin.users.disable_user("lead", force=True)  # the last lead: confirmed
        cover = admin.breakglass.lead_cover()
        assert cover is not None and cover.holders == ()
        assert cover.message is not None and "break-glass ceremony is now the only way" in (
            cover.message
        )
    add_lead(env)
    with closing(env.session("admin")) as admin:
        admin.breakglass.ceremony(env.breakglass_code, "newlead", REASON)
        cover = admin.breakglass.lead_cover()
        assert cover is not None and cover.holders == ("newlead",)
    add_lead(env, "thirdlead")
    with closing(open_session(env.folder, *NEW_LEAD, env.clock)) as s:
        own = {p.username: p.fingerprint for p in s.directory.pending()}
        s.directory.confirm("thirdlead", own["thirdlead"])
        cover = s.breakglass.lead_cover()
        assert cover is not None and cover.holders == ("newlead", "thirdlead")
        assert cover.message is None


# ----- the CLI ------------------------------------------------------------------------------


def cli(capsys, monkeypatch, password: str, *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("GPSHARE_PASSWORD", password)
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_ceremony_then_banner_line_and_ack(vault_env_v2, capsys, monkeypatch):
    env = vault_env_v2
    add_lead(env)
    vault = str(env.folder)
    monkeypatch.setenv("GPSHARE_BREAKGLASS_CODE", env.breakglass_code)
    code, out, err = cli(
        capsys, monkeypatch, PASSWORDS["admin"], "breakglass", "--vault", vault, "--user",
        "admin", "--grant-lead", "newlead", "--reason", REASON, "--json",
    )  # fmt: skip
    assert code == 0, err
    info = json.loads(out)
    assert info["granted"] == "newlead" and info["breakglass_code"] != env.breakglass_code
    assert env.breakglass_code not in (env.folder / "vault.json").read_text()
    # Leads and admins get the banner line on their commands; a clinician does not.
    code, out, err = cli(capsys, monkeypatch, PASSWORDS["lead"], "keys", "show", "--vault",
                         vault, "--user", "lead", "--json")  # fmt: skip
    assert code == 0 and "Break-glass used: admin granted" in err and REASON in err
    json.loads(out)  # standard output is still the command's JSON
    code, out, err = cli(capsys, monkeypatch, PASSWORDS["drsmith"], "keys", "show", "--vault",
                         vault, "--user", "drsmith")  # fmt: skip
    assert code == 0 and "Break-glass" not in err
    for user in ("lead", "lead"):
        code, out, err = cli(capsys, monkeypatch, PASSWORDS[user], "breakglass", "ack",
                             "--vault", vault, "--user", user)  # fmt: skip
    assert code != 0 and "already acknowledged" in err
    code, out, err = cli(capsys, monkeypatch, NEW_LEAD[1], "breakglass", "ack", "--vault",
                         vault, "--user", "newlead")  # fmt: skip
    assert code == 0 and "the notice ends" in out
    code, out, err = cli(capsys, monkeypatch, PASSWORDS["admin"], "breakglass", "status",
                         "--vault", vault, "--user", "admin", "--json")  # fmt: skip
    status = json.loads(out)
    assert status["banner"] is None and status["lead_key_holders"] == ["lead", "newlead"]
    assert "Break-glass used" not in err
    code, out, err = cli(capsys, monkeypatch, PASSWORDS["admin"], "audit", "verify",
                         "--vault", vault, "--user", "admin")  # fmt: skip
    assert code == 0, err


def test_cli_wrong_code_is_a_clear_message(vault_env_v2, capsys, monkeypatch):
    env = vault_env_v2
    add_lead(env)
    vault = str(env.folder)
    monkeypatch.setenv("GPSHARE_BREAKGLASS_CODE", "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH")
    code, out, err = cli(
        capsys, monkeypatch, PASSWORDS["admin"], "breakglass", "--vault", vault, "--user",
        "admin", "--grant-lead", "newlead", "--reason", REASON,
    )  # fmt: skip
    assert code != 0 and "break-glass code does not open" in err and "Traceback" not in err


def test_cli_ceremony_needs_user_and_reason(vault_env_v2, capsys, monkeypatch):
    code, _out, err = cli(
        capsys, monkeypatch, PASSWORDS["admin"], "breakglass", "--vault",
        str(vault_env_v2.folder), "--user", "admin", "--grant-lead", "lead",
    )  # fmt: skip
    assert code != 0 and "--reason" in err


def test_cli_never_takes_the_code_as_an_argument():
    from gpshare.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(
            ["breakglass", "--user", "admin", "--grant-lead", "x", "--reason", "y", "--code", "z"]
        )


# ----- the demo vault: version 2 on request ------------------------------------------------------------


def test_demo_vault_is_version_2_and_every_demo_user_can_work(tmp_path, clock):
    from gpshare.demo import DEMO_USERS, create_demo_vault
    from gpshare.store.crypto import CHEAP_TEST_KDF
    from tests.conftest import SCENARIOS

    folder = tmp_path / "demo"
    info = create_demo_vault(folder, clock, CHEAP_TEST_KDF, format_version=2)
    assert json.loads((folder / "vault.json").read_text())["format_version"] == 2
    assert info["format_version"] == 2 and info["breakglass_code"]
    answers = json.loads((SCENARIOS / "01-bruised-toddler-parents-agree.json").read_text())
    for user in DEMO_USERS:
        s = open_session(folder, user["username"], user["password"], clock)
        try:
            assert s.keys is not None
            own = s.directory.own_key()
            assert own is not None and own.confirmed, user["username"]
            if user["role"] == "clinician":
                assert s.keys.clinical_generations()  # the lead confirmed them at creation
                draft = s.assessments.start_assessment(answers=answers["answers"])
                assert draft.clinician == user["username"]
                if user["username"] == "drowen":  # drpatel's are the demo's own records
                    done, _ = s.assessments.complete(draft.id)
                    assert not done.is_draft
                assert draft.id in {r.id for r in s.assessments.list_records()}
            elif user["role"] == "lead":
                assert s.keys.holds_lead_key
                assert len(s.assessments.list_records()) >= 3  # drpatel's demo records
                cover = s.breakglass.lead_cover()
                assert cover is not None and cover.holders == ("lead",)
            else:
                assert {u.username for u in s.users.list_users()} == {
                    u["username"] for u in DEMO_USERS
                }
                assert s.breakglass.notice() is None
        finally:
            s.close()
    # The demo's break-glass code is the real one: it opens the slot.
    private = Vault.open(folder).open_breakglass(str(info["breakglass_code"]), clock)
    assert private.public_key().public_bytes_raw() == Vault.open(folder).breakglass_public_key()


def test_cli_demo_prints_the_breakglass_code(tmp_path, capsys, monkeypatch):
    from gpshare.store import crypto

    monkeypatch.setattr(crypto, "calibrate", lambda *a, **k: crypto.CHEAP_TEST_KDF)
    code = main(["demo", "--vault", str(tmp_path / "d"), "--json", "--v2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    info = json.loads(out)
    assert info["format_version"] == 2 and len(info["breakglass_code"].replace("-", "")) == 32


def test_the_default_demo_is_version_2_and_v1_is_made_on_request(tmp_path, monkeypatch):
    # docs/vault-v2.md step 6 (services half): the lead's search finds narratives on v2 (the
    # replica), so the demo the README starts is version 2; `--v1` still makes the old one.
    from gpshare.store import crypto

    monkeypatch.setattr(crypto, "calibrate", lambda *a, **k: crypto.CHEAP_TEST_KDF)
    assert main(["demo", "--vault", str(tmp_path / "d"), "--json"]) == 0
    assert json.loads((tmp_path / "d" / "vault.json").read_text())["format_version"] == 2
    assert main(["demo", "--vault", str(tmp_path / "e"), "--json", "--v1"]) == 0
    assert json.loads((tmp_path / "e" / "vault.json").read_text())["format_version"] == 1


# ----- the app: the ceremony dialog on the Admin screen, and the banner ------------------------

SHOTS = Path(os.environ.get("GPSHARE_SHOTS", "")) if os.environ.get("GPSHARE_SHOTS") else None


def shot(widget, name: str) -> None:  # type: ignore[no-untyped-def]
    """Save a screenshot when GPSHARE_SHOTS names a folder (for looking at, never committed)."""
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        widget.grab().save(str(SHOTS / f"{name}.png"))


def unlock(window, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    w = window.unlock_widget
    w.username_edit.setText(username)
    w.password_edit.setText(password)
    w.unlock_button.click()
    assert window.session is not None, username


def test_ceremony_dialog_needs_the_reason_and_the_code_then_shows_the_new_code(vault_env_v2, qtbot):
    from gpshare.ui.admin_view import AdminView
    from gpshare.ui.app import MainWindow
    from gpshare.ui.breakglass import BreakglassDialog

    env = vault_env_v2
    add_lead(env)
    window = MainWindow(clock=env.clock, vault_folder=env.folder)
    qtbot.addWidget(window)
    window.show()
    unlock(window, "admin", PASSWORDS["admin"])
    admin = window.page("admin")
    assert isinstance(admin, AdminView) and admin.breakglass_button.isVisibleTo(admin)
    assert "Only lead holds the safeguarding lead key" in admin.lead_notice.text()
    session = window.session
    dialog = BreakglassDialog(session, admin)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.grantee.setCurrentIndex(dialog.grantee.findData("newlead"))
    before = counts(session)
    dialog.code.setText(env.breakglass_code)
    dialog.ok_button.click()  # no reason
    assert "reason for using the break-glass code" in dialog.field_errors["reason"].text()
    dialog.reason.setPlainText(REASON)
    dialog.code.setText("AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH")
    dialog.ok_button.click()
    assert "does not open" in dialog.field_errors["code"].text()
    assert counts(session) == before and dialog.pages.currentIndex() == 0
    shot(dialog, "ceremony-dialog-wrong-code")
    env.clock.advance(3600)
    dialog.code.setText(env.breakglass_code)
    dialog.ok_button.click()
    assert dialog.pages.currentIndex() == 1 and dialog.result_ is not None
    new_code = dialog.new_code.text()
    assert new_code == dialog.result_.new_code and not dialog.done_button.isEnabled()
    dialog.typed_back.setText("wrong")
    assert not dialog.done_button.isEnabled()
    dialog.typed_back.setText(new_code.lower().replace("-", " "))
    assert dialog.done_button.isEnabled()
    shot(dialog, "ceremony-dialog-new-code")
    dialog.done_button.click()
    window.breakglass_banner.refresh()
    assert window.breakglass_banner.isVisible()
    admin.reload_lead_notice()
    assert not admin.lead_notice.isVisible()  # lead and newlead hold it now
    window.lock()


def test_banner_in_the_main_window_until_two_users_acknowledge(vault_env_v2, qtbot):
    from gpshare.ui.app import MainWindow

    env = vault_env_v2
    add_lead(env)
    with closing(env.session("admin")) as admin:
        admin.breakglass.ceremony(env.breakglass_code, "newlead", REASON)
    window = MainWindow(clock=env.clock, vault_folder=env.folder)
    qtbot.addWidget(window)
    window.resize(1200, 760)
    window.show()
    unlock(window, "drsmith", PASSWORDS["drsmith"])
    assert not window.breakglass_banner.isVisible()  # clinicians do not see it
    window.lock()
    unlock(window, "lead", PASSWORDS["lead"])
    banner = window.breakglass_banner
    assert banner.isVisible() and "admin granted the safeguarding lead key to newlead" in (
        banner.text.text()
    )
    assert REASON in banner.text.text()
    shot(window, "banner-lead")
    banner.ack_button.click()
    assert banner.isVisible() and "1 more" in banner.text.text()
    banner.ack_button.click()  # the same user again: refused, still showing
    assert banner.isVisible() and "already acknowledged" in banner.text.text()
    window.lock()
    assert not banner.isVisible()
    unlock(window, "admin", PASSWORDS["admin"])
    assert banner.isVisible()
    banner.ack_button.click()
    assert not banner.isVisible()
    window.lock()
