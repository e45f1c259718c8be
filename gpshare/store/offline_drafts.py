"""The workstation's offline draft cache (DESIGN §10.3 "Server unreachable"): one file per
draft in `offline-drafts/` of the workstation's vault folder, for drafts typed while the
practice server cannot be reached.

This module only stores and reads the files; what is in them is sealed by the services
(gpshare/services/_offline_drafts.py): the draft's answers exactly as the server row would
hold them (under the draft's object key, with that key wrapped for the author and the pinned
lead public key) and the rest of the draft's state under the same key. What stays readable
here is class M only: vault id, record id, author's username, form id and version, the version
the draft was based on, and whether it is new. Every file is written atomically (a temp file
in the same folder, fsync, rename, fsync of the folder): a kill leaves the previous file or
the new one, never a torn one.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpshare.store.errors import StorageWriteError, StoreError
from gpshare.store.files import atomic_write, describe_os_error, fsync_dir

FOLDER = "offline-drafts"
SUFFIX = ".gpdraft"
FORMAT = "gpshare-offline-draft/1"
_RECORD_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


class OfflineDraftError(StoreError):
    """A cache file that cannot be used (unreadable, edited, not this user's): the message names
    the file. It is kept where it is, never deleted."""


@dataclass(frozen=True)
class CachedWrap:
    """The draft's object key wrapped for one recipient (a user, or the lead key)."""

    recipient: str
    generation: int
    wrap: bytes


@dataclass(frozen=True)
class CachedDraft:
    """One cache file's content. `answers_ct` is bound to version `base_version + 1` (as the
    server's next row), `meta_ct` holds the step, times and author's name under the same key."""

    vault_id: str
    record_id: str
    author: str
    form_id: str
    form_version: int
    base_version: int  # the server version the draft was opened or saved at; 0 = new
    answers_ct: bytes
    meta_ct: bytes
    commitment: bytes
    wraps: tuple[CachedWrap, ...]

    @property
    def is_new(self) -> bool:
        """True when the draft was started offline (not yet on the server)."""
        return self.base_version == 0


def folder(vault_folder: Path) -> Path:
    """The cache folder of a workstation's vault folder (it may not exist)."""
    return vault_folder / FOLDER


def path_for(vault_folder: Path, record_id: str) -> Path:
    """The cache file of one draft."""
    if not _RECORD_ID.match(record_id):
        raise ValueError(f"not a record id: {record_id!r}")
    return folder(vault_folder) / f"{record_id}{SUFFIX}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode(draft: CachedDraft) -> bytes:
    """The file's bytes (canonical JSON; ciphertexts in base64)."""
    body = {
        "format": FORMAT,
        "vault_id": draft.vault_id,
        "record_id": draft.record_id,
        "author": draft.author,
        "form_id": draft.form_id,
        "form_version": draft.form_version,
        "base_version": draft.base_version,
        "answers_ct": _b64(draft.answers_ct),
        "meta_ct": _b64(draft.meta_ct),
        "commitment": _b64(draft.commitment),
        "wraps": [
            {"recipient": w.recipient, "generation": w.generation, "wrap": _b64(w.wrap)}
            for w in draft.wraps
        ],
    }
    return json.dumps(body, sort_keys=True).encode("ascii")


def decode(data: bytes, name: str) -> CachedDraft:
    """A cache file's content, or OfflineDraftError naming `name` when it is not one."""
    try:
        body: Any = json.loads(data)
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise ValueError("not an offline draft file of this version")
        wraps = tuple(
            CachedWrap(str(w["recipient"]), int(w["generation"]), base64.b64decode(w["wrap"]))
            for w in body["wraps"]
        )
        draft = CachedDraft(
            vault_id=str(body["vault_id"]),
            record_id=str(body["record_id"]),
            author=str(body["author"]),
            form_id=str(body["form_id"]),
            form_version=int(body["form_version"]),
            base_version=int(body["base_version"]),
            answers_ct=base64.b64decode(body["answers_ct"], validate=True),
            meta_ct=base64.b64decode(body["meta_ct"], validate=True),
            commitment=base64.b64decode(body["commitment"], validate=True),
            wraps=wraps,
        )
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise OfflineDraftError(
            f"The offline draft file {name} is not readable ({exc}); it has been left where it "
            "is. Tell the practice administrator."
        ) from exc
    if draft.base_version < 0 or not _RECORD_ID.match(draft.record_id):
        raise OfflineDraftError(f"The offline draft file {name} has been altered; it was left.")
    return draft


def write(vault_folder: Path, draft: CachedDraft) -> Path:
    """Write (or replace) the draft's cache file atomically; its path."""
    target = path_for(vault_folder, draft.record_id)
    try:
        target.parent.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise StorageWriteError(describe_os_error(exc, target)) from exc
    atomic_write(target, encode(draft))
    return target


def read(path: Path) -> CachedDraft:
    """One cache file, or OfflineDraftError naming it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OfflineDraftError(
            f"The offline draft file {path.name} cannot be read ({exc.strerror or exc})."
        ) from exc
    return decode(data, path.name)


def paths(vault_folder: Path) -> list[Path]:
    """Every cache file of the folder, by name (a temp file left by a kill is not one)."""
    where = folder(vault_folder)
    if not where.is_dir():
        return []
    return sorted(p for p in where.iterdir() if p.name.endswith(SUFFIX) and p.is_file())


def remove(path: Path) -> None:
    """Delete a cache file once its draft is on the server (durably: the folder is synced)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
        fsync_dir(path.parent)
