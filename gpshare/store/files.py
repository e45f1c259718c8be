"""Atomic, private file writes and the single-instance vault lock."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from gpshare.store.errors import StorageWriteError, VaultBusyError


def describe_os_error(exc: OSError, target: Path) -> str:
    """Plain-English message for a failed write."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"The disk holding {target.parent} is full. Free some space and try again; nothing was changed."
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            f"gpshare is not allowed to write in {target.parent} (read-only or no permission). "
            "Choose another folder or ask your IT support to grant write access."
        )
    return f"Could not write {target.name}: {exc.strerror or exc}. Nothing was changed."


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old or the new file.

    Temp file in the same folder, mode 0600 before any data, fsync, os.replace, fsync dir.
    """
    atomic_write_chunks(path, (data,))


def atomic_write_chunks(path: Path, chunks: Iterable[bytes]) -> None:
    """`atomic_write` of data produced piece by piece (streamed exports): only one chunk is
    held at a time; if producing a chunk raises, the temp file is removed and `path` is
    left as it was."""
    tmp_name: str | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            os.chmod(tmp_name, 0o600)
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        fsync_dir(path.parent)
    except OSError as exc:
        raise StorageWriteError(describe_os_error(exc, path)) from exc
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (no-op on Windows, which has no directory fsync)."""
    if sys.platform == "win32":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class VaultLock:
    """An exclusive OS lock on `<vault>/vault.lock`, held while the vault is open."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "vault.lock"
        self._handle: IO[bytes] | None = None

    def acquire(self) -> None:
        """Take the lock or raise VaultBusyError / StorageWriteError."""
        if self._handle is not None:
            return
        try:
            # 0600 from the start (open() would give 0644 under the usual umask).
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
            handle = os.fdopen(fd, "a+b")
        except OSError as exc:
            raise StorageWriteError(describe_os_error(exc, self.path)) from exc
        try:
            if sys.platform == "win32":
                import msvcrt

                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            else:
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            raise VaultBusyError(
                "This vault is already open in another gpshare window or command. Close it "
                "there first (or wait for the other command to finish), then try again."
            ) from exc
        self._handle = handle

    def release(self) -> None:
        """Release the lock (closing the handle releases it on every platform)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    @property
    def held(self) -> bool:
        return self._handle is not None
