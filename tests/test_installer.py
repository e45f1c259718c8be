"""Packaging: the PyInstaller spec, Linux desktop metadata, keyring choice, version report,
and (marked `bundle`) a real build of the bundle run through installer/smoke_test.py."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import keyring
import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALLER = ROOT / "installer"
SPEC = INSTALLER / "gpshare.spec"
DESKTOP = INSTALLER / "linux" / "gpshare.desktop"
METAINFO = INSTALLER / "linux" / "uk.nhs.gpshare.metainfo.xml"


# ----- Linux desktop metadata ---------------------------------------------------------------
def test_desktop_file_validates() -> None:
    tool = shutil.which("desktop-file-validate")
    if tool is None:
        pytest.skip("desktop-file-validate (Debian desktop-file-utils) not installed")
    proc = subprocess.run([tool, str(DESKTOP)], capture_output=True, text=True)
    assert proc.returncode == 0 and "error" not in proc.stdout, proc.stdout + proc.stderr


def test_metainfo_validates() -> None:
    tool = shutil.which("appstreamcli")
    if tool is None:
        pytest.skip("appstreamcli (Debian appstream) not installed")
    proc = subprocess.run(
        [tool, "validate", "--no-net", str(METAINFO)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_desktop_and_metainfo_agree() -> None:
    desktop = dict(
        line.split("=", 1)
        for line in DESKTOP.read_text(encoding="utf-8").splitlines()
        if "=" in line
    )
    component = ET.parse(METAINFO).getroot()
    component_id = component.findtext("id")
    assert component_id == "uk.nhs.gpshare"
    # Installed as /usr/share/applications/<id>.desktop (installer/README.md).
    assert component.findtext("launchable[@type='desktop-id']") == f"{component_id}.desktop"
    assert desktop["Icon"] == component_id
    assert desktop["Exec"].split()[0] == "gpshare"
    releases = [r.get("version") for r in component.iter("release")]
    from gpshare import __version__

    assert __version__ in releases, "add a <release> for this version to the metainfo"


def test_icons_rendered_from_the_svg() -> None:
    svg = ET.parse(INSTALLER / "icons" / "gpshare.svg").getroot()
    assert svg.get("viewBox") == "0 0 256 256"
    for size in (16, 32, 48, 64, 128, 256):
        png = (INSTALLER / "icons" / f"gpshare-{size}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert (width, height) == (size, size)
    assert (INSTALLER / "icons" / "gpshare.ico").read_bytes()[:4] == b"\x00\x00\x01\x00"


# ----- the spec, executed with stand-ins for PyInstaller's building blocks ------------------
class _Recorder:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


def _run_spec(monkeypatch: pytest.MonkeyPatch, platform: str = "linux") -> dict[str, Any]:
    hooks = types.ModuleType("PyInstaller.utils.hooks")
    hooks.collect_data_files = lambda pkg: [(f"<data of {pkg}>", pkg)]  # type: ignore[attr-defined]
    hooks.collect_submodules = lambda pkg: [f"{pkg}.<all submodules>"]  # type: ignore[attr-defined]
    hooks.copy_metadata = lambda dist: [(f"<metadata of {dist}>", f"{dist}.dist-info")]  # type: ignore[attr-defined]
    for name in ("PyInstaller", "PyInstaller.utils"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "PyInstaller.utils.hooks", hooks)
    monkeypatch.setattr(sys, "platform", platform)
    ns: dict[str, Any] = {"SPECPATH": str(INSTALLER), "__name__": "__spec__"}

    class Analysis(_Recorder):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            base = "PySide6/Qt/plugins/"
            self.binaries = [(f"{base}{p}x.so", "/src", "BINARY") for p in ns["REQUIRED_PLUGINS"]]
            self.binaries += [
                (f"{base}platformthemes/libqgtk3.so", "/src", "BINARY"),
                (f"{base}qmltooling/libqmldbg_debugger.so", "/src", "BINARY"),
                (f"{base}tls/libqopensslbackend.so", "/src", "BINARY"),
            ]
            self.datas = [
                ("PySide6/Qt/translations/qtbase_de.qm", "/src", "DATA"),
                *kwargs["datas"],
            ]
            self.pure: list[Any] = []
            self.scripts: list[Any] = []

    ns.update(Analysis=Analysis, PYZ=_Recorder, EXE=_Recorder, COLLECT=_Recorder)
    exec(compile(SPEC.read_text(encoding="utf-8"), str(SPEC), "exec"), ns)
    return ns


def test_spec_ships_forms_fonts_migrations_and_reportlab_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ns = _run_spec(monkeypatch)
    datas = {(Path(src).as_posix(), dest) for src, dest in ns["a"].kwargs["datas"]}
    forms = sorted(p.name for p in (ROOT / "forms").glob("*.toml"))
    assert forms and all((f"{(ROOT / 'forms' / f).as_posix()}", "forms") in datas for f in forms)
    for sql in (ROOT / "gpshare" / "store" / "sqlcipher" / "migrations").glob("*.sql"):
        assert (
            sql.as_posix(),
            "gpshare/store/sqlcipher/migrations",
        ) in datas  # package data of gpshare.store.sqlcipher
    for ttf in (ROOT / "gpshare" / "fonts").glob("*.ttf"):
        assert (ttf.as_posix(), "gpshare/fonts") in datas  # gpshare.letter: next to its module
    assert ("<data of reportlab>", "reportlab") in datas
    assert any(dest == "gpshare/ui/icons" for _src, dest in datas)
    assert ("<metadata of keyring>", "keyring.dist-info") in datas  # keyring entry points


def test_spec_hidden_imports_and_excludes(monkeypatch: pytest.MonkeyPatch) -> None:
    ns = _run_spec(monkeypatch)
    hidden = set(ns["a"].kwargs["hiddenimports"])
    for name in (
        "gpshare.<all submodules>",
        "gpshare.ui.app",
        "gpshare.letter",
        "gpshare.signing",
        "pyhanko.sign.signers",
        "pyhanko.sign.validation",
        "pyhanko_certvalidator",
        "PySide6.QtPdf",
        "PySide6.QtPdfWidgets",
        "PySide6.QtPrintSupport",
        "PySide6.QtSvg",
        "keyring.backends.<all submodules>",
        "secretstorage",
    ):
        assert name in hidden, name
    excludes = set(ns["a"].kwargs["excludes"])
    for name in (
        "tkinter",
        "numpy",
        "PySide6.QtWebEngineCore",
        "PySide6.Qt3DCore",
        "PySide6.QtQuick",
        "PySide6.QtQml",
        "pytest",
    ):
        assert name in excludes, name
    # Qt plugins: required ones kept (platforms incl. offscreen + xcb, imageformats, printsupport);
    # GTK theme, QML tooling, TLS and foreign translations dropped.
    kept = [dest for dest, *_ in ns["a"].binaries] + [dest for dest, *_ in ns["a"].datas]
    for plugin in (
        "platforms/libqxcb",
        "platforms/libqoffscreen",
        "imageformats/libqsvg",
        "printsupport",
    ):
        assert any(f"plugins/{plugin}" in k for k in kept), plugin
    assert not any("libqgtk3" in k or "qmltooling" in k or "/tls/" in k for k in kept)
    assert not any(k.endswith("qtbase_de.qm") for k in kept)


def test_spec_windows_has_windowed_app_and_console_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    ns = _run_spec(monkeypatch, platform="win32")
    names = {exe.kwargs["name"]: exe.kwargs["console"] for exe in ns["executables"]}
    assert names == {"gpshare": False, "gpshare-cli": True}
    assert "win32ctypes.core" in ns["a"].kwargs["hiddenimports"]
    assert any("qwindows" in p for p in ns["REQUIRED_PLUGINS"])


def test_build_output_is_ignored_by_git() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    proc = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "-q", "installer/dist/gpshare/x"]
    )
    assert proc.returncode == 0


def test_inno_setup_script_is_per_machine_and_spares_vault_data() -> None:
    iss = (INSTALLER / "windows" / "gpshare.iss").read_text(encoding="utf-8")
    assert re.search(r"^PrivilegesRequired=admin$", iss, re.M)
    assert re.search(r"^DefaultDirName=\{autopf\}\\", iss, re.M)
    assert not re.search(r"^\[UninstallDelete\]", iss, re.M)  # removes only what it installed
    assert "[Icons]" in iss and "{autoprograms}" in iss
    assert "uninsneveruninstall" in iss  # a /VAULTDIR folder is never removed
    assert "SignTool=" in iss


# ----- keyring: explicit per-platform choice -------------------------------------------------
def test_keyring_select_finds_nothing_without_a_dbus_session(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_keyring: None
) -> None:
    from gpshare import keyring_select

    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert keyring_select.select_backend("linux") is None
    before = keyring.get_keyring()
    if sys.platform.startswith("linux"):
        assert keyring_select.install_backend() is None
        assert keyring.get_keyring() is before  # left alone


def test_keyring_select_on_this_machine_is_none_when_headless() -> None:
    from gpshare import keyring_select

    if keyring_select.dbus_session_reachable():
        pytest.skip("this machine has a D-Bus session (a desktop), so it may have a keyring")
    assert keyring_select.select_backend() is None


def test_keyring_select_other_platforms_are_unusable_here() -> None:
    from gpshare import keyring_select

    if sys.platform != "win32":
        assert keyring_select.select_backend("win32") is None
    if sys.platform != "darwin":
        assert keyring_select.select_backend("darwin") is None


def test_keyring_select_uses_secret_service_when_it_answers(
    monkeypatch: pytest.MonkeyPatch, no_keyring: None
) -> None:
    from keyring.backends import SecretService

    from gpshare import keyring_select

    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
    monkeypatch.setattr(keyring_select, "_usable", lambda backend_class: True)  # "it answers"
    chosen = keyring_select.select_backend("linux")
    assert isinstance(chosen, SecretService.Keyring)
    if sys.platform.startswith("linux"):
        installed = keyring_select.install_backend()
        assert isinstance(installed, SecretService.Keyring)
        assert keyring.get_keyring() is installed  # no_keyring restores the previous one


def test_without_a_keyring_the_app_says_type_your_password(no_keyring: None) -> None:
    from gpshare.keyring_select import select_backend
    from gpshare.store.errors import KeyringUnavailableError
    from gpshare.store.vault import usable_keyring

    if select_backend() is not None:
        pytest.skip("this machine has a usable keyring")
    with pytest.raises(KeyringUnavailableError) as info:
        usable_keyring()
    message = str(info.value).lower()
    assert "no secure keyring" in message and "type your password" in message


def test_frozen_app_names_the_platform_keyring(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_keyring: None
) -> None:
    from keyring.backend import KeyringBackend

    from gpshare import keyring_select
    from gpshare.store import vault
    from gpshare.store.errors import KeyringUnavailableError

    if not hasattr(vault, "_platform_keyring_chosen"):
        pytest.skip("gpshare/store/vault.py does not use gpshare.keyring_select yet")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(vault, "_platform_keyring_chosen", False)
    # A headless machine: nothing usable, so the installed app says "type your password".
    monkeypatch.setattr(keyring_select, "select_backend", lambda platform=None: None)
    with pytest.raises(KeyringUnavailableError, match="Type your password"):
        vault.usable_keyring()

    class DesktopKeyring(KeyringBackend):
        priority = 5

        def get_password(self, service: str, username: str) -> str | None:
            return None

        def set_password(self, service: str, username: str, password: str) -> None:
            raise AssertionError("not in this test")

        def delete_password(self, service: str, username: str) -> None:
            raise AssertionError("not in this test")

    desktop = DesktopKeyring()
    monkeypatch.setattr(vault, "_platform_keyring_chosen", False)
    monkeypatch.setattr(keyring_select, "select_backend", lambda platform=None: desktop)
    assert vault.usable_keyring() is desktop


# ----- gpshare --version ----------------------------------------------------------------------
def test_version_report_has_every_key() -> None:
    from gpshare import __version__
    from gpshare.about import version_report, version_text

    report = version_report()
    assert set(report) >= {
        "gpshare",
        "python",
        "platform",
        "frozen",
        "forms",
        "qt",
        "sqlcipher",
        "reportlab",
        "pyHanko",
        "pyhanko-certvalidator",
        "cryptography",
        "keyring",
        "sqlcipher3",
        "platformdirs",
    }
    assert report["gpshare"] == __version__
    assert any(f["id"] == "england-child-safeguarding" for f in report["forms"])
    assert report["qt"] and report["qt"]["qt"].startswith("6.")
    assert report["sqlcipher"].startswith("4."), report["sqlcipher"]
    assert all(report[k] for k in ("reportlab", "pyHanko", "cryptography", "keyring"))
    json.dumps(report)  # JSON-ready for support
    text = version_text(report)
    assert text.splitlines()[0] == f"gpshare {__version__}"
    assert "england-child-safeguarding v" in text and "SQLCipher 4." in text and "Qt 6." in text


def test_sqlcipher_version_reads_the_bundled_library() -> None:
    from gpshare.store.db_info import sqlcipher_version

    assert re.match(r"^4\.\d+\.\d+ .*\(SQLite 3\.\d+\.\d+\)$", sqlcipher_version())


# ----- the real bundle ------------------------------------------------------------------------
@pytest.mark.bundle
@pytest.mark.skipif(os.environ.get("GPSHARE_SKIP_BUNDLE") == "1", reason="GPSHARE_SKIP_BUNDLE=1")
def test_bundle_builds_and_passes_the_smoke_test(tmp_path: Path) -> None:
    out = tmp_path / "build"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPSHARE_")}
    build = subprocess.run(
        [sys.executable, str(INSTALLER / "build.py"), "--out", str(out), "--install-requirements"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout[-5000:] + build.stderr[-5000:]
    info = json.loads((out / "build-info.json").read_text(encoding="utf-8"))
    # Build time is reported (docs/performance.md), never asserted: timings vary with load.
    archive = Path(info["archive"])
    digest, name = (out / f"{archive.name}.sha256").read_text(encoding="ascii").split()
    assert name == archive.name and digest == hashlib.sha256(archive.read_bytes()).hexdigest()
    smoke = subprocess.run(
        [sys.executable, str(INSTALLER / "smoke_test.py"), str(out / "gpshare")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(build.stdout[-1500:], smoke.stdout, sep="\n")
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert "smoke test passed" in smoke.stdout
    shutil.rmtree(out, ignore_errors=True)  # ~350 MB; pytest keeps old tmp folders around
