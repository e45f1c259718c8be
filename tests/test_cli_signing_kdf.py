"""`gpshare assess --complete --letter` derives the password key once (Argon2id is ~0.5 s by
design): the signing key is unwrapped with the unlock's derivation."""

from __future__ import annotations

import pytest

from gpshare.cli import main
from gpshare.errors import ServiceError
from gpshare.store import crypto
from tests import pdftools
from tests.conftest import PASSWORDS, SCENARIOS


def test_assess_complete_letter_runs_one_key_derivation(vault_env, monkeypatch, tmp_path):
    calls: list[int] = []
    real = crypto.derive

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(crypto, "derive", counting)
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["drsmith"])
    letter = tmp_path / "letter.pdf"
    scenario = SCENARIOS / "01-bruised-toddler-parents-agree.json"
    argv = ["assess", "--user", "drsmith", "--complete", "--vault", str(vault_env.folder)]
    code = main([*argv, "--answers", str(scenario), "--letter", str(letter)])
    assert code == 0 and letter.read_bytes().startswith(b"%PDF")
    assert len(calls) == 1
    assert "Ellie" in pdftools.pdftotext(letter.read_bytes())


def test_signing_without_a_password_needs_a_password_unlock(vault_env):
    s = vault_env.session("drsmith")
    worker = s.worker_session()  # shares the key, not the unlock's password derivation
    try:
        with pytest.raises(ServiceError, match="Type your password"):
            worker._unlock_secret()
        assert s._unlock_secret()
    finally:
        worker.close()
        s.close()
