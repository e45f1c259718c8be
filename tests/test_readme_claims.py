"""README claims in "Security model" and "Backups and recovery" that no other test pinned.

The full claim → test list is at the end of docs/reliability.md.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gpshare import cli
from gpshare.letter import build_letter
from gpshare.signing import create_practice_ca, issue_user_certificate, sign_pdf
from gpshare.store import backup
from gpshare.store.vault import Vault
from tests.conftest import PASSWORDS
from tests.pdftools import needs, pdfsig
from tests.test_letter import OUTCOMES, make_input, scenario


@needs("pdfsig")
def test_letters_are_signed_pades_b_b_with_sha256() -> None:
    now = datetime.now(UTC).replace(microsecond=0)  # pdfsig checks validity on the wall clock
    ca = create_practice_ca("Canal Row Medical Practice", now)
    user = issue_user_certificate(
        ca,
        full_name="Dr Siân Evans",
        username="sevans",
        role="GP partner",
        gmc_number="7012345",
        practice_name="Canal Row Medical Practice",
        now=now,
    )
    letter = build_letter(make_input(scenario("01")["answers"], OUTCOMES["01"]))
    report = pdfsig(sign_pdf(letter, user, ca.cert_pem, now=now, reason="r", location="l"))
    # PAdES baseline signatures use the ETSI CAdES detached sub-filter.
    assert "ETSI.CAdES.detached" in report, report
    assert "SHA-256" in report or "SHA256" in report, report


def test_gpshare_backup_on_the_command_line(vault_env, capsys, monkeypatch) -> None:
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["admin"])
    code = cli.main(["backup", "--vault", str(vault_env.folder), "--user", "admin"])
    assert code == 0
    assert "Backup written to" in capsys.readouterr().out
    snapshots = backup.list_backups(Vault.open(vault_env.folder))
    assert len(snapshots) == 1
    assert not (snapshots[0].path / "records.db").read_bytes().startswith(b"SQLite format 3")


def test_vault_id_is_bound_into_every_slot(vault_env) -> None:
    """The same slot, read as if it belonged to another vault, does not open (GCM AD)."""
    import uuid

    vault = Vault.open(vault_env.folder)
    slot = vault.password_slot("drsmith")
    assert slot is not None
    assert vault._open_slot(slot, PASSWORDS["drsmith"].encode()) is not None
    vault.header["vault_id"] = str(uuid.uuid4())
    assert vault._open_slot(slot, PASSWORDS["drsmith"].encode()) is None
