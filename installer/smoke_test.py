#!/usr/bin/env python3
"""Smoke-test a BUILT gpshare bundle, the way practice IT would use it.

    python installer/smoke_test.py [BUNDLE_DIR]        # default installer/dist/gpshare
    python installer/smoke_test.py BUNDLE --measure 5  # also time start-up: bundle vs virtualenv

Checks, each in a fresh temporary HOME (nothing of the user's is read or written):
  1. `gpshare --version` answers and names the bundled form;
  2. `gpshare demo --vault TMP` creates a demo vault;
  3. a scripted assessment (fictional child, NHS test number 999 000 0018, refer to children's
     social care with consent) through `gpshare assess --complete --letter OUT.pdf` as a demo
     clinician;
  4. poppler's `pdfsig OUT.pdf` says "Signature is Valid" (skip with --skip-pdfsig where
     poppler is not installed, e.g. a Windows runner);
  5. `gpshare verify-letter OUT.pdf --ca CA.pem` (pyHanko inside the bundle) says valid;
  6. the desktop app started with `--smoke-test` (QT_QPA_PLATFORM=offscreen) shows the unlock
     screen, prints its marker and exits 0;
  7. a read-only copy of the bundle folder still does 1, 6 and a vault read, and nothing in the
     copy changes (checked by snapshot too, since root ignores permission bits);
  8. what the spec excludes (tkinter, QtWebEngine, QtQuick/QML, numpy, test tools) is absent.
Exit code 0 when every check passed. Uses only the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
IS_WIN = sys.platform == "win32"
SMOKE_MARKER = "smoke-test: unlock screen shown"
CLINICIAN, CLINICIAN_PASSWORD = "drpatel", "demo-gp-pass"  # gpshare.demo.DEMO_USERS
TIMEOUT = 180

# Fictional: the demo vault's monitored child, now with a new concern that is referred, with
# the mother's consent. NHS number from the 999 test range (never issued to patients).
ANSWERS = {
    "form": "england-child-safeguarding",
    "form_version": 2,
    "answers": {
        "nhs_number": "9990000018",
        "child_given_name": "Tomasz",
        "child_family_name": "Wiśniewski",
        "date_of_birth": "2019-06-02",
        "gender": "male",
        "address": "Flat 4, 20 Mill Road, Exampleton",
        "parents_carers": [
            {
                "name": "Ewa Wiśniewska",
                "relationship": "mother",
                "parental_responsibility": True,
                "address": "Flat 4, 20 Mill Road, Exampleton",
                "phone": "07700 900123",
            }
        ],
        "immediate_danger": False,
        "concern_narrative": (
            "Brought in with bruising to both upper arms in a grip pattern. Tomasz said an "
            "older cousin who stays at weekends 'holds him too hard'. SMOKE TEST - FICTIONAL."
        ),
        "concern_opinion": "A pattern consistent with inflicted injury; needs a multi-agency view.",
        "concern_source": ["observed", "disclosed_by_child"],
        "child_words": "My cousin holds me too hard when Mum is at work.",
        "prior_concerns_acknowledged": True,
        "categories": ["physical"],
        "threshold_view": "significant_harm",
        "advice_sought": True,
        "advisor_name": "Dr Ruth Adebayo",
        "advisor_role": "practice_safeguarding_lead",
        "advice_date": time.strftime("%Y-%m-%d"),
        "advice_anonymised": False,
        "advice_summary": "Refer to children's social care today.",
        "decision": "refer_csc",
        "consent_subject": "parent_with_pr",
        "consent_sought": True,
        "consent_outcome": "given",
        "consent_given_by": "Ewa Wiśniewska (mother)",
        "consent_scope": "The injuries, what Tomasz said and relevant health history, to "
        "Exampleton children's services.",
        "explained_to_person": [
            "why",
            "benefit",
            "what",
            "with_whom",
            "how_used",
            "may_share_anyway",
        ],
        "consent_date": time.strftime("%Y-%m-%d"),
        "parents_informed": "before",
        "parents_informed_detail": "Ewa Wiśniewska (mother), in person",
        "child_informed": "before",
        "child_informed_detail": "Told Tomasz, in words he understood, that I would ask for help.",
        "child_local_authority": "Exampleton Council",
        "csc_status": "not_open",
        "cpis_checked": "no_flag",
        "parental_factors": ["none_known"],
        "child_views": "Says he likes home but does not want his cousin to stay any more.",
        "child_whereabouts_safety": "At home with his mother tonight; the cousin is not there.",
        "risks_to_visiting_staff": "None known.",
        "lawful_basis_art6": "public_task",
        "condition_art9": "health_social_care",
        "recipient_type": "csc",
        "recipient_name": "Exampleton Children's Services — Front Door",
        "method": "secure_email",
        "included_items": ["child_identity", "parent_identities", "reasons", "health_information"],
    },
}

# Substrings of bundled file paths that must not be there (see EXCLUDES in gpshare.spec).
FORBIDDEN = (
    "QtWebEngine",
    "Qt6Quick",
    "Qt6Qml",
    "Qt6Designer",
    "tkinter",
    "tcl8",
    "numpy",
    "_pytest",
    "hypothesis",
    "/mypy/",
    "platformthemes/libqgtk3",
)


class SmokeFailure(Exception):
    pass


def gpshare_version() -> str:
    for line in (ROOT / "gpshare" / "__init__.py").read_text(encoding="utf-8").splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    raise SmokeFailure("no __version__ in gpshare/__init__.py")


def executable(bundle: Path) -> Path:
    """The console executable (on Windows gpshare-cli.exe: gpshare.exe has no console)."""
    exe = bundle / ("gpshare-cli.exe" if IS_WIN else "gpshare")
    if not exe.is_file():
        raise SmokeFailure(f"{exe} not found: build first with installer/build.py")
    return exe


def clean_env(home: Path) -> dict[str, str]:
    """The caller's environment without gpshare settings, with a throwaway home folder."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GPSHARE_", "PYTHON", "QT_", "XDG_", "PYTEST", "DBUS_SESSION"))
    }
    for name in ("data", "config", "cache", "state"):
        (home / name).mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_STATE_HOME=str(home / "state"),
        QT_QPA_PLATFORM="offscreen",
        PYTHONIOENCODING="utf-8",
    )
    if IS_WIN:
        env.update(
            APPDATA=str(home / "config"), LOCALAPPDATA=str(home / "data"), USERPROFILE=str(home)
        )
    return env


def run(
    cmd: Sequence[str | Path],
    env: dict[str, str],
    cwd: Path,
    *,
    expect: int = 0,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    full_env = dict(env, **(extra_env or {}))
    try:
        proc = subprocess.run(
            [str(c) for c in cmd],
            env=full_env,
            cwd=cwd,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise SmokeFailure(f"{' '.join(map(str, cmd))}: no answer within {TIMEOUT} s") from exc
    if proc.returncode != expect:
        raise SmokeFailure(
            f"{' '.join(map(str, cmd))}: exit {proc.returncode}, expected {expect}\n"
            f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


def _json(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise SmokeFailure(f"not JSON: {proc.stdout[:2000]!r}") from exc
    if not isinstance(data, dict):
        raise SmokeFailure(f"expected a JSON object, got {proc.stdout[:500]!r}")
    return data


# ----- checks ----------------------------------------------------------------------------------
def check_version(exe: Path, env: dict[str, str], cwd: Path) -> str:
    out = run([exe, "--version"], env, cwd).stdout
    want = f"gpshare {gpshare_version()}"
    if want not in out:
        raise SmokeFailure(f"--version printed {out!r}, expected {want!r}")
    if "forms:" in out:  # gpshare.about.version_text is wired into --version
        if "england-child-safeguarding" not in out:
            raise SmokeFailure(f"--version lists no bundled form:\n{out}")
        return "version + bundled form " + out.split("forms:", 1)[1].splitlines()[0].strip()
    return f"version ({out.strip()}; forms not listed: about.version_text not wired in yet)"


def check_demo(exe: Path, env: dict[str, str], cwd: Path, vault: Path) -> str:
    data = _json(run([exe, "demo", "--vault", vault, "--json"], env, cwd))
    if not (vault / "vault.json").is_file() or not (vault / "records.db").is_file():
        raise SmokeFailure(f"demo created no vault in {vault}")
    users = data.get("users")
    if not isinstance(users, list) or not any(u.get("username") == CLINICIAN for u in users):
        raise SmokeFailure(f"demo vault has no {CLINICIAN}: {data}")
    return f"demo vault with {len(users)} users"


def check_assessment(exe: Path, env: dict[str, str], cwd: Path, vault: Path, tmp: Path) -> Path:
    answers = tmp / "answers.json"
    answers.write_text(json.dumps(ANSWERS, ensure_ascii=False, indent=2), encoding="utf-8")
    letter = tmp / "out" / "referral.pdf"
    letter.parent.mkdir()
    proc = run(
        [
            exe,
            "assess",
            "--vault",
            vault,
            "--user",
            CLINICIAN,
            "--answers",
            answers,
            "--complete",
            "--letter",
            letter,
            "--json",
        ],
        env,
        cwd,
        extra_env={"GPSHARE_PASSWORD": CLINICIAN_PASSWORD},
    )
    data = _json(proc)
    outcome = data.get("outcome") or {}
    if data.get("status") != "completed" or data.get("errors"):
        raise SmokeFailure(f"assessment not completed: {json.dumps(data, indent=2)[:3000]}")
    if not isinstance(outcome, dict) or not outcome.get("letter_required"):
        raise SmokeFailure(f"refer_csc with consent should need a letter: {outcome}")
    if not letter.is_file() or not letter.read_bytes().startswith(b"%PDF-"):
        raise SmokeFailure(f"no signed letter at {letter}: {proc.stdout[:2000]}")
    return letter


def check_pdfsig(letter: Path, env: dict[str, str], cwd: Path) -> str:
    pdfsig = shutil.which("pdfsig")
    if not pdfsig:
        raise SmokeFailure("pdfsig (poppler-utils) not found; install it or pass --skip-pdfsig")
    out = run([pdfsig, letter], env, cwd).stdout
    if "Signature is Valid" not in out:
        raise SmokeFailure(f"pdfsig did not report a valid signature:\n{out}")
    return "pdfsig: Signature is Valid"


def check_verify_letter(
    exe: Path, env: dict[str, str], cwd: Path, vault: Path, letter: Path, tmp: Path
) -> str:
    ca = tmp / "out" / "practice-ca.pem"
    run(
        [exe, "ca", "export", "--vault", vault, "--user", CLINICIAN, "--out", ca],
        env,
        cwd,
        extra_env={"GPSHARE_PASSWORD": CLINICIAN_PASSWORD},
    )
    data = _json(run([exe, "verify-letter", letter, "--ca", ca, "--json"], env, cwd))
    if data.get("ok") is not True or data.get("intact") is not True:
        raise SmokeFailure(f"verify-letter: {data}")
    return f"verify-letter (pyHanko): valid, signed by {data.get('signer')}"


def check_gui(exe: Path, env: dict[str, str], cwd: Path, vault: Path) -> str:
    out = run([exe, "--smoke-test", "--vault", vault], env, cwd).stdout
    if SMOKE_MARKER not in out:
        raise SmokeFailure(f"--smoke-test exited 0 but did not print {SMOKE_MARKER!r}:\n{out}")
    return f"GUI --smoke-test (offscreen): {SMOKE_MARKER!r}"


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in folder.rglob("*")
    }


def set_writable(folder: Path, writable: bool) -> None:
    for p in [folder, *folder.rglob("*")]:
        if p.is_symlink():
            continue
        mode = p.stat().st_mode
        new = (
            mode | stat.S_IWUSR
            if writable
            else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        )
        os.chmod(p, new)


def check_read_only(bundle: Path, env: dict[str, str], cwd: Path, vault: Path, tmp: Path) -> str:
    copy = tmp / "readonly" / bundle.name
    shutil.copytree(bundle, copy, symlinks=True)
    set_writable(copy, False)
    before = snapshot(copy)
    try:
        exe = executable(copy)
        check_version(exe, env, cwd)
        check_gui(exe, env, cwd, vault)
        data = run(
            [exe, "records", "--vault", vault, "--user", CLINICIAN, "--json"],
            env,
            cwd,
            extra_env={"GPSHARE_PASSWORD": CLINICIAN_PASSWORD},
        )
        if "9990000018" not in data.stdout.replace(" ", ""):
            raise SmokeFailure(
                f"records from the read-only copy miss the new record:\n{data.stdout[:2000]}"
            )
    finally:
        after = snapshot(copy)
        set_writable(copy, True)
    changed = sorted(set(before.items()) ^ set(after.items()))
    if changed:
        raise SmokeFailure(f"running from the read-only copy changed it: {changed[:20]}")
    return "read-only copy: --version, GUI smoke test and records list work; copy unchanged"


def check_excluded(bundle: Path) -> str:
    found = sorted(
        {
            part
            for p in bundle.rglob("*")
            for part in FORBIDDEN
            if part in "/" + p.relative_to(bundle).as_posix()
        }
    )
    if found:
        raise SmokeFailure(f"excluded components are in the bundle: {found}")
    return "no excluded components (" + ", ".join(FORBIDDEN[:5]) + ", …)"


# ----- start-up timing ------------------------------------------------------------------------
def time_smoke(cmd: Sequence[str | Path], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Seconds from process start to the smoke-test marker line, and to process exit."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(c) for c in cmd],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    assert proc.stdout is not None
    marker_at = None
    for line in proc.stdout:
        if SMOKE_MARKER in line and marker_at is None:
            marker_at = time.perf_counter() - start
    code = proc.wait(timeout=TIMEOUT)
    ended = time.perf_counter() - start
    if code != 0 or marker_at is None:
        raise SmokeFailure(
            f"{' '.join(map(str, cmd))}: exit {code}, marker seen: {marker_at is not None}"
        )
    return marker_at, ended


def measure(
    exe: Path, venv_python: str, env: dict[str, str], cwd: Path, vault: Path, rounds: int
) -> dict[str, object]:
    venv_env = dict(env, PYTHONPATH=str(ROOT))  # the source tree, as an editable install has it
    runs: dict[str, list[tuple[float, float]]] = {"bundle": [], "venv": []}
    time_smoke([exe, "--smoke-test", "--vault", vault], env, cwd)  # warm the disk cache once
    time_smoke([venv_python, "-m", "gpshare", "--smoke-test", "--vault", vault], venv_env, cwd)
    for _ in range(rounds):  # interleaved, so both see the same machine state
        runs["bundle"].append(time_smoke([exe, "--smoke-test", "--vault", vault], env, cwd))
        runs["venv"].append(
            time_smoke(
                [venv_python, "-m", "gpshare", "--smoke-test", "--vault", vault], venv_env, cwd
            )
        )
    result: dict[str, object] = {"rounds": rounds}
    for name, samples in runs.items():
        result[name] = {
            "to_unlock_screen_median_s": round(statistics.median(s[0] for s in samples), 3),
            "to_exit_median_s": round(statistics.median(s[1] for s in samples), 3),
            "to_unlock_screen_all_s": [round(s[0], 3) for s in samples],
        }
    return result


# ----- main -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Smoke-test a built gpshare bundle.")
    parser.add_argument("bundle", nargs="?", type=Path, default=HERE / "dist" / "gpshare")
    parser.add_argument(
        "--skip-pdfsig",
        action="store_true",
        help="skip the poppler pdfsig check (verify-letter still runs)",
    )
    parser.add_argument(
        "--measure",
        type=int,
        metavar="N",
        default=0,
        help="also time --smoke-test N times: bundle vs this virtualenv",
    )
    parser.add_argument(
        "--venv-python",
        default=sys.executable,
        help="interpreter for the virtualenv side of --measure",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    args = parser.parse_args(argv)

    bundle = args.bundle.resolve()
    results: list[str] = []
    summary: dict[str, object] = {"bundle": str(bundle), "ok": False}
    with tempfile.TemporaryDirectory(prefix="gpshare-smoke-") as tmp_name:
        tmp = Path(tmp_name)
        env = clean_env(tmp / "home")
        vault = tmp / "vault"
        try:
            exe = executable(bundle)
            steps = [
                lambda: check_excluded(bundle),
                lambda: check_version(exe, env, tmp),
                lambda: check_demo(exe, env, tmp, vault),
            ]
            for step in steps:
                results.append(step())
                print(f"ok   {results[-1]}", flush=True)
            letter = check_assessment(exe, env, tmp, vault, tmp)
            results.append(
                f"assess --complete --letter: signed letter {letter.stat().st_size} bytes"
            )
            print(f"ok   {results[-1]}", flush=True)
            later = [
                (lambda: "pdfsig skipped")
                if args.skip_pdfsig
                else (lambda: check_pdfsig(letter, env, tmp)),
                lambda: check_verify_letter(exe, env, tmp, vault, letter, tmp),
                lambda: check_gui(exe, env, tmp, vault),
                lambda: check_read_only(bundle, env, tmp, vault, tmp),
            ]
            for step in later:
                results.append(step())
                print(f"ok   {results[-1]}", flush=True)
            if args.measure:
                timing = measure(exe, args.venv_python, env, tmp, vault, args.measure)
                summary["startup"] = timing
                for name in ("bundle", "venv"):
                    t = timing[name]
                    assert isinstance(t, dict)
                    print(
                        f"time {name:6} to unlock screen: median {t['to_unlock_screen_median_s']} s "
                        f"(exit {t['to_exit_median_s']} s) over {args.measure}: "
                        f"{t['to_unlock_screen_all_s']}",
                        flush=True,
                    )
        except SmokeFailure as exc:
            print(f"FAIL {exc}", file=sys.stderr, flush=True)
            summary["error"] = str(exc)
            if args.json:
                print(json.dumps(summary, indent=2))
            return 1
    summary.update(ok=True, checks=results)
    if args.json:
        print(json.dumps(summary, indent=2))
    print(f"smoke test passed: {len(results)} checks", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
