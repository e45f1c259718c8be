"""Shared helpers for the benchmarks: timing (median / p95 over N runs), tables, RSS, vaults.

Benchmarks are not tests: they assert nothing. Each prints absolute times and the ratio
against a baseline measured in the same run (DESIGN.md §8), and can append its rows to a
JSON file (`--json PATH`) from which docs/performance.md is written.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import math
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The scenarios the tests own (tests/fixtures): benchmarks never read outside the repository.
SCENARIOS = ROOT / "tests" / "fixtures" / "scenarios" / "v2"  # the newest form's scenarios
# Seeded vaults and plain copies live here between runs (`--reuse`); fictional data only.
BENCH_DIR = Path(
    os.environ.get("GPSHARE_BENCH_DIR") or Path(tempfile.gettempdir()) / "gpshare-bench"
)
# Benchmarks copy seeded vaults back to their pristine state between runs, which the
# rollback anchor (gpshare/store/anchor.py) rightly reports as a rollback. Each bench process
# keeps its anchors in a folder of its own, never in the user's real data folder; child
# processes share their parent's (inherited through the environment), and the process that
# made the folder removes it when it ends.
if not os.environ.get("GPSHARE_ANCHOR_DIR"):
    _anchors = tempfile.mkdtemp(prefix="gpshare-bench-anchors-")
    os.environ["GPSHARE_ANCHOR_DIR"] = _anchors
    atexit.register(shutil.rmtree, _anchors, ignore_errors=True)
PASSWORDS = {
    "admin": "admin-password-1",
    "lead": "lead-password-1",
    "drsmith": "smith-password-1",
    "drjones": "jones-password-1",
}
CLINICIAN_PASSWORD = "clinician-password-1"  # for the extra clinicians bench/seed.py adds
# `--quick` (every benchmark): small sizes and few runs, so that scripts/run-tests.sh can run
# each one in seconds and they cannot rot. Quick timings are printed, never compared.
QUICK_N = 400


def add_quick(parser: argparse.ArgumentParser) -> None:
    """The `--quick` option every benchmark takes."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"small sizes and few runs ({QUICK_N} seeded records), to check the benchmark runs",
    )


# ----- timing ---------------------------------------------------------------------------------
def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Timing:
    """Samples of one operation, in milliseconds."""

    name: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        return percentile(self.samples, 95)

    @property
    def best(self) -> float:
        return min(self.samples)

    def describe(self) -> str:
        return (
            f"{self.name}: median {self.median:.2f} ms, p95 {self.p95:.2f} ms, "
            f"min {self.best:.2f} ms over {len(self.samples)} runs"
        )


def time_ms(fn: Callable[[], object]) -> float:
    """One call of fn, in milliseconds."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def measure(
    name: str,
    fn: Callable[[], object],
    runs: int,
    *,
    warmup: int = 1,
    setup: Callable[[], object] | None = None,
) -> Timing:
    """Call fn `runs` times after `warmup` untimed calls; `setup` (untimed) runs before each."""
    for _ in range(warmup):
        if setup:
            setup()
        fn()
    timing = Timing(name)
    for _ in range(runs):
        if setup:
            setup()
        timing.samples.append(time_ms(fn))
    return timing


def measure_pair(
    name: str,
    fn: Callable[[], object],
    base_name: str,
    base: Callable[[], object],
    runs: int,
    *,
    warmup: int = 1,
) -> tuple[Timing, Timing]:
    """Measure fn and its baseline interleaved (a, b, a, b…) so drift hits both alike."""
    for _ in range(warmup):
        fn()
        base()
    a, b = Timing(name), Timing(base_name)
    for _ in range(runs):
        a.samples.append(time_ms(fn))
        b.samples.append(time_ms(base))
    return a, b


# ----- results table -------------------------------------------------------------------------
@dataclass
class Row:
    """One line of the results table (all times in ms, memory in MB)."""

    operation: str
    budget: str
    measured: float
    baseline: float | None
    baseline_name: str = ""
    stat: str = "median"
    unit: str = "ms"
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline <= 0:
            return None
        return self.measured / self.baseline


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "MB":
        return f"{value:.0f} MB"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def print_table(title: str, rows: list[Row]) -> None:
    """A plain fixed-width table: operation, budget, measured, baseline, ratio."""
    headers = ("operation", "budget", "measured", "baseline", "ratio")
    lines = []
    for r in rows:
        ratio = f"{r.ratio:.2f}×" if r.ratio is not None else "—"
        base = _num(r.baseline, r.unit) + (f" ({r.baseline_name})" if r.baseline_name else "")
        lines.append(
            (f"{r.operation} [{r.stat}]", r.budget or "—", _num(r.measured, r.unit), base, ratio)
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    print()
    print(title)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
    for r in rows:
        if r.note:
            print(f"  note — {r.operation}: {r.note}")
    print()


def save_rows(
    path: str | None, bench: str, rows: list[Row], extra: dict[str, object] | None = None
) -> None:
    """Append this benchmark's rows to a JSON file (one object per benchmark name)."""
    if not path:
        return
    target = Path(path)
    data: dict[str, object] = {}
    if target.exists():
        data = json.loads(target.read_text(encoding="utf-8"))
    data[bench] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "rows": [{**asdict(r), "ratio": r.ratio} for r in rows],
        **(extra or {}),
    }
    target.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


# ----- machine and memory ----------------------------------------------------------------------
def machine() -> str:
    """One line: CPU, cores, RAM, OS, Python, SQLCipher."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        ram = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    try:
        import sqlcipher3

        conn = sqlcipher3.connect(":memory:")
        cipher = f", SQLCipher {conn.execute('PRAGMA cipher_version').fetchone()[0]}"
        conn.close()
    except Exception:  # noqa: BLE001 - description only
        cipher = ""
    load = ""
    with contextlib.suppress(OSError):
        load = f", load average {os.getloadavg()[0]:.2f}"
    return (
        f"{cpu}, {os.cpu_count()} cores{ram}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}{cipher}{load}"
    )


def rss_mb() -> float:
    """Resident set size of this process now (VmRSS), else peak RSS from getrusage."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)


# ----- scenario answers and small vaults ----------------------------------------------------------
def scenario_answers(name: str) -> dict[str, object]:
    """The `answers` of a shared scenario file, e.g. '01-bruised-toddler-parents-agree'."""
    path = SCENARIOS / f"{name}.json"
    return dict(json.loads(path.read_text(encoding="utf-8"))["answers"])


def create_bench_vault(folder: Path, clock=None):  # type: ignore[no-untyped-def]
    """A vault like tests/conftest.make_vault: admin, lead, drsmith, drjones, cheap KDF.

    The cheap KDF keeps set-up fast; the benchmarks that care about unlock time subtract
    the KDF explicitly (startup.py).
    """
    from gpshare.demo import add_new_user, choose_own_password
    from gpshare.services import create_vault
    from gpshare.store.crypto import CHEAP_TEST_KDF

    admin, _recovery = create_vault(
        folder,
        practice_name="Canal Street Surgery (BENCH)",
        admin_username="admin",
        admin_full_name="Pat Admin",
        admin_password=PASSWORDS["admin"],
        clock=clock,
        kdf=CHEAP_TEST_KDF,
    )
    try:
        admin.practice.update_settings(
            {
                "practice_address": "1 Canal Street, Leeds LS1 1AA",
                "practice_ods_code": "B86001",
                "practice_phone": "0113 496 0000",
                "practice_secure_email": "canal.safeguarding@nhs.net",
            }
        )
        initial: dict[str, str] = {}
        initial["lead"] = add_new_user(admin, "lead", "Dr Priya Natarajan", "lead", "7654321")
        initial["drsmith"] = add_new_user(admin, "drsmith", "Dr Alex Smith", "clinician", "1234567")
        initial["drjones"] = add_new_user(admin, "drjones", "Dr Sam Jones", "clinician", "2345678")
    finally:
        admin.close()
    for username, first in initial.items():  # each chooses their own, as new users must
        choose_own_password(folder, clock, username, first, PASSWORDS[username])
    return folder


def qt_env() -> dict[str, str]:
    """Environment for Qt child processes: offscreen, no accessibility bus noise."""
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.setdefault("QT_ACCESSIBILITY", "0")
    env["PYTHONPATH"] = str(ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    # Measure what a practice runs: compiled bytecode (the bundle and pip installs ship it).
    # With PYTHONDONTWRITEBYTECODE every child recompiled gpshare's sources (~50 ms of the
    # start-up); the bytecode goes to a cache beside the seeds, never into the repository.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(BENCH_DIR / "pycache")
    return env


# ----- `--proposed` (kept so old commands still run) ------------------------------------------------
# The store changes once measured here with --proposed (indexes, the integer-keyed full-text
# index, sargable date filters, index-only paging) are merged as migration 0005, so every
# vault the benchmarks open already has them; --proposed no longer changes anything.


def proposed_copy(seeded: Path, info: dict[str, object]) -> Path:
    """The seeded vault itself: the proposal is merged (migration 0005)."""
    del info
    print("note: --proposed is merged into the code (migration 0005); measuring the vault as is")
    return seeded


def patch_repositories() -> None:
    """Nothing to patch any more: repositories.py contains the measured proposal."""
