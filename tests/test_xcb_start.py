"""The app starts with Qt's real X11 platform plugin (xcb) under Xvfb, as on a Linux desktop:
this is what breaks when a system library the plugin needs is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("Xvfb") is None,
    reason="Xvfb is not installed (scripts/run-tests.sh installs the xvfb package)",
)


@pytest.fixture
def xvfb_display():
    """A private Xvfb server; yields its DISPLAY value (":N")."""
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1366x768x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()
        assert number.isdigit(), "Xvfb did not report a display number"
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_app_opens_its_window_with_the_xcb_plugin(xvfb_display, tmp_path):
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "xcb",
        "DISPLAY": xvfb_display,
        "GPSHARE_VAULT": str(tmp_path / "vault"),
        "HOME": str(tmp_path),
    }
    env.pop("WAYLAND_DISPLAY", None)
    done = subprocess.run(
        [sys.executable, "-m", "gpshare", "--smoke-test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "smoke-test: unlock screen shown" in done.stdout
    assert "Could not load the Qt platform plugin" not in done.stderr
