"""Unexpected errors go to a local log *without patient data*.

Only the exception type and the code locations (file, line, function) are written —
never the exception message or local values, which could hold names or narratives.
"""

from __future__ import annotations

import os
import traceback
from datetime import UTC, datetime
from pathlib import Path


def log_dir() -> Path:
    """Per-user log folder (platformdirs)."""
    import platformdirs

    return Path(platformdirs.user_log_dir("gpshare", appauthor=False))


def log_exception(exc: BaseException) -> Path:
    """Append a scrubbed record of `exc` to gpshare.log; returns the log path."""
    folder = log_dir()
    path = folder / "gpshare.log"
    frames = traceback.extract_tb(exc.__traceback__)
    lines = [
        f"{datetime.now(UTC).isoformat(timespec='seconds')} {type(exc).__module__}.{type(exc).__name__}"
    ]
    lines += [f"    at {Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
    except OSError:
        pass  # logging must never turn one failure into two
    return path
