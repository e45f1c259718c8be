"""pyHanko is imported without aiohttp: gpshare is offline and aiohttp costs ~0.25 s."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
from gpshare import signing
signing.verify_pdf(b"%PDF-1.7 not a real letter", [])  # imports pyHanko's validation
import pyhanko.sign.signers, pyhanko.sign.timestamps, pyhanko.sign.validation.ades
print(sorted(m for m in sys.modules if m.split(".")[0] in ("aiohttp", "requests")))
try:
    pyhanko.sign.timestamps.HTTPTimeStamper("http://tsa.example")
except RuntimeError as exc:
    print(exc)
"""


def test_signing_and_verifying_never_import_aiohttp():
    # A fresh interpreter: this test process may have imported anything already.
    out = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True, timeout=120
    )
    modules, refusal = out.stdout.strip().splitlines()
    assert modules == "[]"
    assert "offline" in refusal  # the stand-in never reaches a network
