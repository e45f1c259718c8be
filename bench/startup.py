"""Benchmark: process start → unlock screen shown, and unlock time excluding the KDF.

Budgets (DESIGN.md §8):
- start → unlock screen shown ≤ 1.5 × a bare PySide6 QMainWindow process. Both are fresh
  subprocesses with QT_QPA_PLATFORM=offscreen, run interleaved (app, bare, app, bare …)
  after one warm-up each; the time is from Popen until the child prints that its window
  is shown (after show() + processEvents()). The app is `python -m gpshare --smoke-test`
  started as a practice user starts it: no --vault and no GPSHARE_VAULT, so the vault
  folder comes from platformdirs (XDG_DATA_HOME points into the benchmark's temporary
  folder; the smoke test creates nothing there). It prints "unlock screen shown" when the
  unlock form has been painted and its username field is the window's focus widget, so
  typing goes there: that moment is the budget row. It then prints "start-up complete"
  when the menus' actions, the workspace and the status bar have been added in place
  (informative). Without that flag, a `python -c` that shows
  gpshare.ui.unlock.UnlockWidget.
- unlock (excluding the deliberate KDF) < 100 ms: `open_session` + `close` on a cheap-KDF
  vault, minus one Argon2id derivation with that slot's parameters, both medians in the
  same run. A breakdown shows where the rest goes (header writes with fsync, opening the
  database, the audited 'unlock' event). With a seeded vault in $GPSHARE_BENCH_DIR
  (bench/seed.py) the unlock is also timed on 100 000 records.

Prints absolute times and ratios; asserts nothing.

    .venv/bin/python bench/startup.py [--runs 7] [--unlock-runs 20] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH_DIR,
    PASSWORDS,
    ROOT,
    Row,
    Timing,
    add_quick,
    create_bench_vault,
    machine,
    measure,
    print_table,
    qt_env,
    save_rows,
)

BARE_WINDOW = """
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication([])
w = QMainWindow()
w.setWindowTitle("bare")
w.resize(960, 640)
w.show()
app.processEvents()
print("shown", flush=True)
"""

UNLOCK_WIDGET = """
import sys
from PySide6.QtWidgets import QApplication
app = QApplication([])
from pathlib import Path
from gpshare.ui.unlock import UnlockWidget
w = UnlockWidget(vault_folder=Path(sys.argv[1]))
w.resize(960, 640)
w.show()
app.processEvents()
print("shown" if w.isVisible() else "NOT shown", flush=True)
"""

IMPORT_SERVICES = """
import time
import gpshare.ui.app  # what is already loaded when the unlock screen is up
t = time.perf_counter()
import gpshare.services
print(f"{(time.perf_counter() - t) * 1000:.3f}", flush=True)
"""


def has_smoke_test() -> bool:
    app = ROOT / "gpshare" / "ui" / "app.py"
    return app.exists() and "--smoke-test" in app.read_text(encoding="utf-8")


def app_command(vault: Path) -> tuple[list[str], str, tuple[str, ...]]:
    """The app's command, its label, and the lines it prints: the unlock screen shown (the
    form painted, ready for typing), then the start-up complete (menus, workspace)."""
    if has_smoke_test():
        return (
            [sys.executable, "-m", "gpshare", "--smoke-test"],
            "python -m gpshare --smoke-test (default vault folder)",
            ("unlock screen shown", "start-up complete"),
        )
    return (
        [sys.executable, "-c", UNLOCK_WIDGET, str(vault)],
        "python -c UnlockWidget.show()",
        ("shown",),
    )


def time_until_shown(cmd: list[str], extra_env: dict[str, str] | None = None) -> float:
    """ms from Popen until the child prints a line containing 'shown'; the child must exit 0."""
    return time_until_lines(cmd, ("shown",), extra_env)[-1]


def time_until_lines(
    cmd: list[str], markers: tuple[str, ...], extra_env: dict[str, str] | None = None
) -> list[float]:
    """ms from Popen until the child prints a line containing each marker, in order (a line
    saying NOT never counts); the child must exit 0."""
    env = {**qt_env(), **(extra_env or {})}
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT, text=True
    )
    assert proc.stdout is not None
    times: list[float] = []
    for line in proc.stdout:
        if markers[len(times)] in line and "NOT" not in line:
            times.append((time.perf_counter() - start) * 1000)
            if len(times) == len(markers):
                break
    _out, err = proc.communicate(timeout=60)
    if len(times) < len(markers) or proc.returncode != 0:
        raise RuntimeError(
            f"{cmd[:4]} did not show its window (exit {proc.returncode}): {err[-800:]}"
        )
    return times


def top_imports(cmd: list[str], limit: int = 8) -> list[tuple[str, float]]:
    """The slowest top-level imports of the app's start (python -X importtime), cumulative ms."""
    env = qt_env()
    proc = subprocess.run(
        [cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True, env=env, cwd=ROOT
    )
    found: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+\d+\s+\|\s+(\d+)\s+\|( *)(\S+)", line)
        if m and len(m.group(2)) <= 1:  # top-level imports only
            found[m.group(3)] = found.get(m.group(3), 0.0) + int(m.group(1)) / 1000
    return sorted(found.items(), key=lambda kv: -kv[1])[:limit]


def startup_rows(runs: int, vault: Path) -> list[Row]:
    cmd, label, markers = app_command(vault)
    bare = [sys.executable, "-c", BARE_WINDOW]
    interp = [sys.executable, "-c", "print('shown', flush=True)"]
    # The default vault folder of a practice user, inside the benchmark's temporary folder.
    # An empty GPSHARE_VAULT counts as unset (gpshare.paths).
    app_env = {"XDG_DATA_HOME": str(vault.parent / "data-home"), "GPSHARE_VAULT": ""}
    time_until_lines(cmd, markers, app_env)  # warm-up: OS file cache, .pyc files
    for c in (bare, interp):
        time_until_shown(c)
    app_t = Timing(f"{label}: unlock screen shown")
    done_t = Timing(f"{label}: start-up complete")
    bare_t, interp_t = Timing("bare QMainWindow"), Timing("python -c pass")
    for _ in range(runs):
        times = time_until_lines(cmd, markers, app_env)
        app_t.samples.append(times[0])
        done_t.samples.append(times[-1])
        bare_t.samples.append(time_until_shown(bare))
        interp_t.samples.append(time_until_shown(interp))
    for t in (app_t, done_t, bare_t, interp_t):
        print(t.describe())
    print(
        "ratios to the bare window, per run (unlock screen shown / start-up complete): "
        + ", ".join(
            f"{p / b:.2f}/{f / b:.2f}"
            for p, f, b in zip(app_t.samples, done_t.samples, bare_t.samples, strict=True)
        )
    )
    services = Timing("import gpshare.services (first unlock)")
    for _ in range(max(3, runs // 2)):
        out = subprocess.run(
            [sys.executable, "-c", IMPORT_SERVICES],
            capture_output=True,
            text=True,
            env=qt_env(),
            cwd=ROOT,
        )
        services.samples.append(float(out.stdout.strip().splitlines()[-1]))
    print(services.describe())
    print("slowest top-level imports of the app start (cumulative ms, one run):")
    for name, ms in top_imports(cmd):
        print(f"  {ms:8.1f}  {name}")
    rows = [
        Row(
            "start → unlock screen shown (form painted, username focused)",
            "≤ 1.5 × bare window",
            app_t.median,
            bare_t.median,
            "bare QMainWindow process",
            note=f"{label}; interpreter alone {interp_t.median:.0f} ms",
        ),
        Row(
            "  … start-up complete (menus, workspace, same window)",
            "",
            done_t.median,
            bare_t.median,
            "bare QMainWindow process",
        ),
        Row(
            "first unlock: lazy import of gpshare.services",
            "",
            services.median,
            None,
            note="paid once, after the unlock screen is up",
        ),
    ]
    return rows


def unlock_rows(runs: int, vault: Path, seeded: Path | None) -> list[Row]:
    from gpshare.services import open_session
    from gpshare.store import crypto
    from gpshare.store.crypto import KdfParams
    from gpshare.store.sqlcipher import db
    from gpshare.store.sqlcipher import repositories as repo
    from gpshare.store.vault import Vault

    user, password = "drsmith", PASSWORDS["drsmith"]
    # Every password slot of a vault uses the vault's default KDF parameters.
    header = Vault.open(vault).header
    slot = next(s for s in header["slots"] if s.get("type") == "password")
    params = KdfParams.from_dict(slot["kdf"])
    salt = os.urandom(16)

    unlock = measure(
        "open_session + close", lambda: open_session(vault, user, password).close(), runs
    )
    kdf = measure(
        f"Argon2id {params}", lambda: crypto.derive(password.encode(), salt, params), runs
    )
    excl = unlock.median - kdf.median
    print(unlock.describe())
    print(kdf.describe())

    # Breakdown of one unlock (medians of the parts, timed separately).
    session = open_session(vault, user, password)
    try:
        db_key = session.db_key
        header_write = measure(
            "vault.json write (atomic, 2 fsyncs)", lambda: session.vault.save(db_key), runs
        )
        audit_event = measure(
            "one audited event (txn + header write)", lambda: session.audit("bench_probe"), runs
        )
    finally:
        session.close()

    def open_db() -> None:
        conn = db.open_database(Vault.open(vault).db_path, db_key)
        repo.get_user(conn, user)
        conn.close()

    open_close = measure("open database + get_user + close", open_db, runs)
    read_header = measure("Vault.open (read vault.json)", lambda: Vault.open(vault), runs)
    for t in (header_write, audit_event, open_close, read_header):
        print(t.describe())
    rows = [
        Row(
            "unlock excluding KDF",
            "< 100 ms",
            excl,
            None,
            note=(
                f"open_session+close {unlock.median:.1f} ms − KDF {kdf.median:.2f} ms (cheap test KDF); "
                f"parts: 2 × vault.json write {header_write.median:.1f} ms, audited event "
                f"{audit_event.median:.1f} ms, open db {open_close.median:.1f} ms, read header "
                f"{read_header.median:.2f} ms"
            ),
        ),
        Row(
            "  vault.json atomic write (×2 per unlock)",
            "",
            header_write.median,
            None,
            stat="median",
        ),
    ]
    if seeded is not None:
        big = measure(
            "open_session + close, 100k vault",
            lambda: open_session(seeded, "lead", PASSWORDS["lead"]).close(),
            max(5, runs // 2),
        )
        print(big.describe())
        rows.append(
            Row(
                "unlock excluding KDF, 100k-record vault", "< 100 ms", big.median - kdf.median, None
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=7, help="process starts per variant (default 7)"
    )
    parser.add_argument("--unlock-runs", type=int, default=20, help="unlocks to time (default 20)")
    parser.add_argument(
        "--seeded",
        type=Path,
        default=BENCH_DIR / "seed-100000",
        help="a seeded vault to time unlock on too (skipped when missing)",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="accepted for symmetry (nothing to reuse)"
    )
    parser.add_argument("--json", help="append the result rows to this JSON file")
    add_quick(parser)
    args = parser.parse_args()
    if args.quick:
        args.runs, args.unlock_runs = 1, 2
    print(machine())
    with tempfile.TemporaryDirectory(prefix="gpshare-bench-") as tmp:
        vault = create_bench_vault(Path(tmp) / "vault")
        rows = startup_rows(args.runs, vault)
        seeded = args.seeded if (args.seeded / "vault.json").exists() else None
        rows += unlock_rows(args.unlock_runs, vault, seeded)
    print_table("startup and unlock", rows)
    save_rows(args.json, "startup", rows)


if __name__ == "__main__":
    main()
