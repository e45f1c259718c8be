#!/usr/bin/env python3
"""Build the gpshare desktop bundle with PyInstaller and pack it for release.

    python installer/build.py                      # -> installer/dist/gpshare/ + archive + .sha256
    python installer/build.py --out build-output
    python installer/build.py --install-requirements   # first pip-install the pinned build tools
    python installer/build.py icons                # re-render installer/icons/*.png and .ico

Run it with the Python of the virtualenv that has gpshare's runtime dependencies installed
(`pip install -e .`); PyInstaller bundles what that interpreter can import.

Output (in --out, default installer/dist/, which git ignores):
    gpshare/                                 the onedir bundle (gpshare or gpshare.exe + _internal/)
    gpshare-<version>-<os>-<arch>.tar.gz     Linux (a .zip on Windows), top folder gpshare/
    gpshare-<version>-<os>-<arch>.tar.gz.sha256   "<hex>  <file name>", as sha256sum -c wants
    build-info.json                          versions, sizes and build time (for the release notes)
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPEC = HERE / "gpshare.spec"
REQUIREMENTS = HERE / "requirements-build.txt"
ICONS = HERE / "icons"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)


def log(message: str) -> None:
    print(f"[build] {message}", flush=True)


def gpshare_version() -> str:
    text = (ROOT / "gpshare" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', text, re.M)
    if not match:
        raise SystemExit("cannot find __version__ in gpshare/__init__.py")
    return match.group(1)


def pinned_requirements() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.split(";", 1)[0].strip()
    return pins


def check_build_tools(install: bool) -> None:
    """PyInstaller must be the pinned version; with `install`, pip-install the pins first."""
    from importlib import metadata

    def mismatches() -> list[str]:
        bad = []
        for name, want in pinned_requirements().items():
            try:
                have = metadata.version(name)
            except metadata.PackageNotFoundError:
                have = None
            if have != want:
                bad.append(f"{name} {have or 'not installed'} (pinned {want})")
        return bad

    bad = mismatches()
    if bad and install:
        log("installing the pinned build tools: " + "; ".join(bad))
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True
        )
        bad = mismatches()
    if bad:
        raise SystemExit(
            "build tools do not match installer/requirements-build.txt: "
            + "; ".join(bad)
            + f"\nrun: {sys.executable} -m pip install -r {REQUIREMENTS}"
            + "\n(or pass --install-requirements)"
        )


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def platform_tag() -> str:
    system = {"win32": "windows", "darwin": "macos"}.get(sys.platform, sys.platform)
    machine = platform.machine().lower().replace("amd64", "x86_64")
    return f"{system}-{machine}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _epoch() -> int:
    """SOURCE_DATE_EPOCH when set (reproducible archives), else the last commit, else now."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%ct"],
            capture_output=True,
            text=True,
            check=True,
        )
        return int(out.stdout.strip())
    except (OSError, subprocess.CalledProcessError, ValueError):
        return int(time.time())


def make_archive(bundle: Path, archive_base: Path) -> Path:
    """Pack `bundle` (top folder kept) into a .tar.gz (POSIX) or .zip (Windows)."""
    epoch = _epoch()
    files = sorted(p for p in bundle.rglob("*"))
    if sys.platform == "win32":
        path = archive_base.with_name(archive_base.name + ".zip")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for p in files:
                zf.write(p, p.relative_to(bundle.parent).as_posix())
        return path

    path = archive_base.with_name(archive_base.name + ".tar.gz")

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = epoch
        # Owner may write; everyone may read (and run what is executable).
        info.mode = (info.mode & 0o755) | 0o644 if not info.isdir() else 0o755
        return info

    # gzip level 6: within 1-2 % of level 9 on these binaries, and much faster.
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=epoch) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        tar.add(bundle, arcname=bundle.name, recursive=False, filter=normalise)
        for p in files:
            tar.add(
                p,
                arcname=p.relative_to(bundle.parent).as_posix(),
                recursive=False,
                filter=normalise,
            )
    return path


def build(out: Path, *, clean: bool, install: bool, archive: bool) -> dict[str, object]:
    check_build_tools(install)
    out = out.resolve()
    in_tree = out == ROOT or ROOT in out.parents
    ignored = out == HERE / "dist" or HERE / "dist" in out.parents
    if in_tree and not ignored:
        raise SystemExit(
            f"--out {out} is in the source tree: use installer/dist/ or a folder outside it"
        )
    dist, work = out, out / "work"
    bundle = dist / "gpshare"
    out.mkdir(parents=True, exist_ok=True)
    if bundle.exists():
        shutil.rmtree(bundle)

    version = gpshare_version()
    log(f"gpshare {version}: PyInstaller onedir build into {bundle}")
    started = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "PyInstaller",
        "--noconfirm",
        "--log-level",
        "WARN",
        "--distpath",
        str(dist),
        "--workpath",
        str(work),
        str(SPEC),
    ]
    if clean:
        cmd.insert(4, "--clean")
    env = dict(os.environ, PYTHONHASHSEED="0")
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)
    pyinstaller_seconds = time.perf_counter() - started

    exe = bundle / ("gpshare.exe" if sys.platform == "win32" else "gpshare")
    if not exe.exists():
        raise SystemExit(f"the build produced no {exe}")
    unpacked = folder_size(bundle)
    info: dict[str, object] = {
        "gpshare": version,
        "platform": platform_tag(),
        "python": platform.python_version(),
        "bundle": str(bundle),
        "executable": str(exe),
        "unpacked_bytes": unpacked,
        "pyinstaller_seconds": round(pyinstaller_seconds, 1),
    }
    mib = 1024 * 1024
    log(f"bundle:     {exe}")
    log(f"unpacked:   {unpacked / mib:.1f} MiB")
    if archive:
        a_started = time.perf_counter()
        path = make_archive(bundle, dist / f"gpshare-{version}-{platform_tag()}")
        digest = sha256_of(path)
        checksum = path.with_name(path.name + ".sha256")
        checksum.write_text(f"{digest}  {path.name}\n", encoding="ascii")
        compressed = path.stat().st_size
        info.update(
            archive=str(path),
            sha256=digest,
            compressed_bytes=compressed,
            archive_seconds=round(time.perf_counter() - a_started, 1),
        )
        log(f"compressed: {compressed / mib:.1f} MiB  {path}")
        log(f"sha256:     {digest}  ({checksum.name})")
    total = time.perf_counter() - started
    info["total_seconds"] = round(total, 1)
    (dist / "build-info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    log(f"build time: {pyinstaller_seconds:.1f} s PyInstaller, {total:.1f} s with packing")
    return info


def render_icons() -> None:
    """Render installer/icons/gpshare.svg to PNGs (Qt's QSvgRenderer) and a Windows .ico."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])
    renderer = QSvgRenderer(str(ICONS / "gpshare.svg"))
    if not renderer.isValid():
        raise SystemExit("installer/icons/gpshare.svg is not a valid SVG")
    pngs = []
    for size in PNG_SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        renderer.render(painter)
        painter.end()
        target = ICONS / f"gpshare-{size}.png"
        if not image.save(str(target)):
            raise SystemExit(f"could not write {target}")
        pngs.append(target)
        log(f"wrote {target.relative_to(ROOT)}")
    try:
        from PIL import Image
    except ImportError:
        log("Pillow missing: gpshare.ico not written")
        return
    with Image.open(ICONS / "gpshare-256.png") as big:
        big.save(ICONS / "gpshare.ico", sizes=[(s, s) for s in ICO_SIZES])
    log("wrote installer/icons/gpshare.ico")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", choices=["bundle", "icons"], default="bundle")
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "dist",
        help="output folder (default installer/dist/, ignored by git)",
    )
    parser.add_argument(
        "--no-clean",
        action="store_true",
        help="reuse PyInstaller's cache in OUT/work (faster rebuilds)",
    )
    parser.add_argument("--no-archive", action="store_true", help="skip the .tar.gz/.zip")
    parser.add_argument(
        "--install-requirements",
        action="store_true",
        help="pip-install installer/requirements-build.txt if it is not matched",
    )
    args = parser.parse_args(argv)
    if args.what == "icons":
        render_icons()
        return 0
    build(
        args.out,
        clean=not args.no_clean,
        install=args.install_requirements,
        archive=not args.no_archive,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
