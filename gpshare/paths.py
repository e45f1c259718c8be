"""Where gpshare keeps things on this computer (no patient data here)."""

from __future__ import annotations

import os
from pathlib import Path


def default_vault_dir() -> Path:
    """The vault folder: $GPSHARE_VAULT, else the per-user data folder from platformdirs.

    Practice IT can pre-seed GPSHARE_VAULT (e.g. a per-machine folder their backups cover);
    see installer/README.md.
    """
    override = os.environ.get("GPSHARE_VAULT")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("gpshare", appauthor=False)) / "vault"
