"""kill -9 trials: a writer, a backup or a restore killed at a random moment loses nothing
acknowledged, and the vault reopens consistent (integrity check clean, audit chain intact).

The normal suite runs a short series; `GPSHARE_KILL_TRIALS=200` runs the long one (figures in
docs/reliability.md). Trials are seeded, so a failure can be replayed with GPSHARE_KILL_SEED.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gpshare.store import backup
from gpshare.store.sqlcipher import db as dbmod
from tests.conftest import PASSWORDS
from tests.storehelp import raw_connection

TRIALS = int(os.environ.get("GPSHARE_KILL_TRIALS", "12"))
SEED = int(os.environ.get("GPSHARE_KILL_SEED", "20261202"))

WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from gpshare.clock import SystemClock
    from gpshare.services import open_session, restore

    folder, mode, password = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    clock = SystemClock()
    if mode == "restore":
        while True:
            restore(folder, Path(sys.argv[4]), "admin", password, clock)
            print("restored", flush=True)  # only after restore() returned
    s = open_session(folder, "drsmith", password, clock)
    i = 0
    while True:
        rec = s.assessments.start_assessment(answers={"child_given_name": f"Child{i}"})
        s.assessments.save_draft(rec.id, rec.answers | {"concern_opinion": "y" * 300}, "concern")
        print(rec.id, flush=True)  # printed only after both commits returned
        if i % 3 == 1:
            s.backups.backup_now(automatic=True)
        if i % 5 == 4:  # lock and unlock again: anchors and header saves in the mix
            s.close()
            s = open_session(folder, "drsmith", password, clock)
        i += 1
    """
)


def _trial(args: list[str], rng: random.Random) -> list[str]:
    """Start the worker, let it acknowledge a few operations, kill -9 at a random moment."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    acked: list[str] = []
    wait_for = rng.randint(0, 3)
    deadline = time.monotonic() + 60
    while len(acked) < wait_for and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked.append(line.strip())
    time.sleep(rng.uniform(0, 0.25))
    os.kill(proc.pid, signal.SIGKILL)
    rest, err = proc.communicate()
    acked += [line for line in rest.splitlines() if line.strip()]
    assert proc.returncode == -signal.SIGKILL, err  # it was killed, not crashed
    return acked


def _check_consistent(env) -> set[str]:
    """Reopen as the lead: integrity clean, chain intact; returns every record id stored."""
    env.clock.advance(1)
    lead = env.session("lead")
    try:
        assert dbmod.integrity_problems(raw_connection(lead)) == []
        report = lead.audit_trail.verify_audit()
        assert report.ok, report.summary()
        return {r.id for r in lead.assessments.list_records()}
    finally:
        lead.close()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_kill_writer_and_backup_at_random_moments(vault_env):
    rng = random.Random(SEED)
    acknowledged: list[str] = []
    trials = (TRIALS + 1) // 2
    killed_backups: set[str] = set()
    for _ in range(trials):
        acked = _trial([str(vault_env.folder), "write", PASSWORDS["drsmith"]], rng)
        acknowledged += acked
        backups = vault_env.folder / "backups"
        if backups.is_dir():  # a backup killed part-way leaves its staging folder
            killed_backups |= {p.name for p in backups.glob(".incomplete-*")}
        stored = _check_consistent(vault_env)
        lost = [r for r in acknowledged if r not in stored]
        assert not lost, f"acknowledged writes lost: {lost}"
    s = vault_env.session("drsmith")
    try:
        for record_id in acknowledged:
            assert (
                s.assessments.get_record(record_id, audit_view=False).answers["concern_opinion"]
                == "y" * 300
            )
    finally:
        s.close()
    admin = vault_env.session("admin")
    try:
        admin.backups.backup_now()  # clears what killed backups left behind
    finally:
        admin.close()
    assert not list((vault_env.folder / "backups").glob(".incomplete-*"))
    print(
        f"\nkill trials (write/backup): {trials} run, {len(killed_backups)} killed mid-backup, "
        f"{len(acknowledged)} writes acknowledged, 0 lost"
    )


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_kill_restore_at_random_moments(vault_env):
    rng = random.Random(SEED + 1)
    s = vault_env.session("drsmith")
    kept = {
        s.assessments.start_assessment(answers={"child_given_name": f"Kept{i}"}).id
        for i in range(3)
    }
    s.close()
    admin = vault_env.session("admin")
    snapshot = admin.backups.backup_now()
    admin.close()
    trials = TRIALS // 2
    restores = mid_restore = 0
    for _ in range(trials):
        restores += len(
            _trial([str(vault_env.folder), "restore", PASSWORDS["admin"], str(snapshot)], rng)
        )
        mid_restore += (vault_env.folder / backup.JOURNAL_NAME).exists()
        assert _check_consistent(vault_env) == kept  # all of the snapshot, nothing half-done
        assert not (vault_env.folder / backup.JOURNAL_NAME).exists()
        assert not list(Path(vault_env.folder).glob(".*.restoring"))
    print(
        f"\nkill trials (restore): {trials} run, {mid_restore} killed mid-swap (journal left), "
        f"{restores} restores acknowledged, 0 half-restored states"
    )
