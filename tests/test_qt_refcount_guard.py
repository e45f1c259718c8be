"""The PySide6 6.12 / CPython 3.11 reference leak exists, and the guard keeps the app alive."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from gpshare.ui import qt_refcount_guard

LOOP = textwrap.dedent(
    """
    import sys
    {guard}
    from PySide6.QtCore import QObject, Signal

    class Emitter(QObject):
        fired = Signal()

    emitter = Emitter()
    for _ in range(20000):
        emitter.setObjectName("x")   # returns None without a reference (the bug)
        emitter.fired.emit()          # returns True without a reference (the bug)
    print("survived")
    """
)


def _run(guard: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run(
        [sys.executable, "-c", LOOP.format(guard=guard)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.skipif(not qt_refcount_guard.needed(), reason="only CPython < 3.12 can free None/True")
def test_without_the_guard_the_leak_would_abort_the_interpreter():
    result = _run("")
    # If a future PySide6 fixes the leak this starts failing: then the guard can go.
    assert result.returncode != 0 and "dealloc" in result.stderr


def test_with_the_guard_the_same_loop_survives():
    result = _run("import gpshare.ui")
    assert result.returncode == 0, result.stderr[-500:]
    assert "survived" in result.stdout
