"""WAL checkpoints happen when the user is idle and at close, never inside a save."""

from __future__ import annotations

import json

from tests.conftest import SCENARIOS
from tests.storehelp import raw_connection


def checkpoint_counts(conn) -> tuple[int, int]:
    """Run a PASSIVE checkpoint: (frames in the WAL, frames copied into the database)."""
    _busy, log, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(log), int(copied)


def test_saves_never_checkpoint_and_idle_checkpoint_copies_everything(vault_env):
    s = vault_env.session("drsmith")
    assert raw_connection(s).execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    s.checkpoint()
    answers = json.loads((SCENARIOS / "01-bruised-toddler-parents-agree.json").read_text())[
        "answers"
    ]
    draft = s.assessments.start_assessment(answers=answers)
    wal = vault_env.folder / "records.db-wal"
    sizes = []
    for i in range(150):
        s.assessments.save_draft(
            draft.id, answers | {"concern_narrative": f"note {i} " * 200}, "concern"
        )
        sizes.append(wal.stat().st_size)
    # With automatic checkpoints (every 1 000 pages) the WAL would restart from the
    # beginning and stop growing; here every save appends.
    assert sizes == sorted(sizes) and sizes[-1] > 1000 * 4096
    log, copied = checkpoint_counts(raw_connection(s))
    assert log > 1000 and copied == log  # the explicit checkpoint copied every frame
    s.close()


def test_the_window_checkpoints_when_idle_not_while_typing(qtbot, vault_env, monkeypatch):
    from tests.test_ui_lead import open_window

    win = open_window(qtbot, vault_env, "drsmith")
    calls: list[int] = []
    monkeypatch.setattr(win.session, "checkpoint", lambda: calls.append(1))
    win.note_activity()
    win.check_idle()
    assert calls == []
    vault_env.clock.advance(10)
    assert win.check_idle() is False  # idle long enough to checkpoint, not to lock
    assert calls == [1]
