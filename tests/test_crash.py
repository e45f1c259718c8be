"""A writer killed with SIGKILL mid-write leaves a consistent vault with every committed row."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from gpshare.store.sqlcipher import db as dbmod
from tests.conftest import PASSWORDS
from tests.storehelp import raw_connection

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from pathlib import Path
    from gpshare.clock import SystemClock
    from gpshare.services import open_session

    s = open_session(Path(sys.argv[1]), "drsmith", sys.argv[2], SystemClock())
    i = 0
    while True:
        rec = s.assessments.start_assessment(answers={"child_given_name": f"Child{i}", "concern_narrative": "x" * 2000})
        s.assessments.save_draft(rec.id, rec.answers | {"concern_opinion": "y" * 500}, "concern")
        print(rec.id, flush=True)  # printed only after both commits returned
        i += 1
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_kill_minus_nine_while_writing(vault_env):
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(vault_env.folder), PASSWORDS["drsmith"]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    committed: list[str] = []
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while len(committed) < 25 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        committed.append(line.strip())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(committed) >= 25, proc.stderr.read() if proc.stderr else ""
    vault_env.clock.advance(5)
    s = vault_env.session("drsmith")
    assert dbmod.integrity_problems(raw_connection(s)) == []
    stored = {r.id for r in s.assessments.list_records()}
    assert set(committed) <= stored
    for record_id in committed:
        assert (
            s.assessments.get_record(record_id, audit_view=False).answers["concern_opinion"]
            == "y" * 500
        )
    s.close()
    lead = vault_env.session("lead")
    report = lead.audit_trail.verify_audit()
    assert report.ok, report.summary()
    lead.close()
