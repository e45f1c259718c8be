"""The second rollback anchor: the highest audit head this OS user has seen, per vault.

vault.json mirrors the audit head, which exposes a truncated or rolled-back records.db. It
does not expose someone putting back an older *pair* (records.db and vault.json copied
together): that pair is self-consistent. So each workstation also remembers, outside the
vault folder, the newest head it has seen for each vault id, MACed under a key derived from
the database key, or in a format-2 vault under HKDF(practice, "rollback-anchor") (so only
someone who can unlock the vault can write a valid anchor).

Limit: a workstation that never saw the newer head cannot tell; deleting the anchor file
(the OS user's own data folder) removes this computer's memory of it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from gpshare.store import crypto
from gpshare.store.errors import StorageWriteError
from gpshare.store.files import atomic_write, describe_os_error
from gpshare.store.practice_keys import PracticeKeys

ENV_DIR = "GPSHARE_ANCHOR_DIR"
_VAULT_ID = re.compile(r"^[0-9a-f-]{36}$")


def anchor_dir() -> Path:
    """$GPSHARE_ANCHOR_DIR, else `anchors/` in the OS user's gpshare data folder."""
    override = os.environ.get(ENV_DIR)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("gpshare", appauthor=False)) / "anchors"


@dataclass(frozen=True)
class Anchor:
    """The newest head (seq, hash) this OS user has seen for one vault.

    `restores` is the number of the newest sealed restore record seen with it: only a
    restore recorded *after* that may explain an older history. `header` is the newest
    practice-server header generation seen (0 for a vault in a folder, whose header is
    vault.json itself): kept here, sealed, because vault.json's copy can be edited.
    """

    seq: int
    hash: str
    restores: int = 0
    header: int = 0


def _key(db_key: bytes) -> bytes:
    if isinstance(db_key, PracticeKeys):
        return db_key.anchor
    return crypto.subkey(db_key, "gpshare rollback anchor v1")


def _mac(
    db_key: bytes, vault_id: str, seq: int, hash_hex: str, restores: int, header: int = 0
) -> str:
    fields: list[object] = [vault_id, seq, hash_hex, restores]
    if header:  # anchors written before the header generation was kept still verify
        fields.append(header)
    body = json.dumps(fields, separators=(",", ":")).encode()
    return hmac.new(_key(db_key), body, hashlib.sha256).hexdigest()


def _path(vault_id: str) -> Path | None:
    # The id comes from vault.json; only a well-formed UUID may name a file.
    if not _VAULT_ID.match(vault_id):
        return None
    return anchor_dir() / f"{vault_id}.json"


def read(vault_id: str, db_key: bytes) -> tuple[Anchor | None, str]:
    """(anchor, problem): (None, "") when this computer has none; problem when it is invalid."""
    path = _path(vault_id)
    if path is None or not path.exists():
        return None, ""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        seq, hash_hex, mac = int(data["seq"]), str(data["hash"]), str(data["mac"])
        restores = int(data.get("restores", 0))
        header = int(data.get("header", 0))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, "unreadable"
    if not hmac.compare_digest(mac, _mac(db_key, vault_id, seq, hash_hex, restores, header)):
        return None, "its seal does not match"
    return Anchor(seq, hash_hex, restores, header), ""


def write(
    vault_id: str, db_key: bytes, seq: int, hash_hex: str, restores: int, header: int = 0
) -> None:
    """Remember (seq, hash), the newest restore record and (practice server) the newest
    header generation as seen. The header generation never goes down here: a caller that
    does not know it (0) keeps the one already remembered. Raises StorageWriteError."""
    path = _path(vault_id)
    if path is None:
        return
    before, _problem = read(vault_id, db_key)
    if before is not None:
        header = max(header, before.header)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StorageWriteError(describe_os_error(exc, path)) from exc
    record = {
        "seq": seq,
        "hash": hash_hex,
        "restores": restores,
        "mac": _mac(db_key, vault_id, seq, hash_hex, restores, header),
    }
    if header:
        record["header"] = header
    atomic_write(path, json.dumps(record, sort_keys=True).encode("utf-8"))
