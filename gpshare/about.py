"""What this installation is made of: `gpshare --version` and the support report.

Nothing here touches a vault or patient data. Qt is imported only if it is installed, so the
command line still answers on a machine without a display.
"""

from __future__ import annotations

import sys
from importlib import metadata
from typing import Any

# Distribution names as pip knows them, and the key each is reported under.
_DISTRIBUTIONS = {
    "reportlab": "reportlab",
    "pyhanko": "pyHanko",
    "pyhanko_certvalidator": "pyhanko-certvalidator",
    "cryptography": "cryptography",
    "keyring": "keyring",
    "sqlcipher3": "sqlcipher3",
    "platformdirs": "platformdirs",
}


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _qt_versions() -> dict[str, str] | None:
    try:
        import PySide6
        from PySide6 import QtCore
    except ImportError:
        return None
    return {"pyside6": PySide6.__version__, "qt": QtCore.qVersion()}


def _forms() -> list[dict[str, Any]]:
    from gpshare.forms import available_forms

    return [{"id": f.id, "version": f.version, "title": f.title} for f in available_forms()]


def _sqlcipher() -> str:
    from gpshare.store.db_info import sqlcipher_version

    try:
        return sqlcipher_version()
    except Exception as exc:  # a broken native library must not stop --version answering
        return f"unavailable ({exc.__class__.__name__})"


def version_report() -> dict[str, Any]:
    """gpshare, form, Qt, SQLCipher and library versions as a JSON-ready dict.

    Keys: gpshare, python, platform, frozen, forms, qt (None without PySide6), sqlcipher,
    and one per library in _DISTRIBUTIONS (None when not installed).
    """
    from gpshare import __version__

    report: dict[str, Any] = {
        "gpshare": __version__,
        "python": sys.version.split()[0],
        "platform": sys.platform,
        "frozen": bool(getattr(sys, "frozen", False)),
        "forms": _forms(),
        "qt": _qt_versions(),
        "sqlcipher": _sqlcipher(),
    }
    for dist, key in _DISTRIBUTIONS.items():
        report[key] = _dist_version(dist)
    return report


def _forms_line(forms: list[dict[str, Any]]) -> list[str]:
    """Per form id: the newest version (used for new assessments), then older readable ones."""
    by_id: dict[str, list[int]] = {}
    for f in forms:
        by_id.setdefault(str(f["id"]), []).append(int(f["version"]))
    out = []
    for form_id, versions in by_id.items():
        newest, *older = sorted(versions, reverse=True)
        text = f"{form_id} v{newest} (new assessments)"
        if older:
            text += ", " + ", ".join(f"v{v}" for v in older) + " (readable, for existing records)"
        out.append(text)
    return out


def version_text(report: dict[str, Any] | None = None) -> str:
    """The human-readable `gpshare --version` output."""
    r = report if report is not None else version_report()
    lines = [f"gpshare {r['gpshare']}" + (" (installed build)" if r["frozen"] else "")]
    forms = r["forms"]
    if forms:
        lines.append("forms: " + "; ".join(_forms_line(forms)))
    else:
        lines.append("forms: NONE FOUND (the forms folder is missing or every file is broken)")
    qt = r["qt"]
    lines.append(f"Qt {qt['qt']} (PySide6 {qt['pyside6']})" if qt else "Qt: not installed")
    lines.append(f"SQLCipher {r['sqlcipher']}")
    libs = [f"{key} {r[key] or 'missing'}" for key in _DISTRIBUTIONS.values()]
    lines.append(", ".join(libs))
    lines.append(f"Python {r['python']} on {r['platform']}")
    return "\n".join(lines)
