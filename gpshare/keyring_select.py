"""Choose the OS keyring backend explicitly, one per platform.

keyring normally discovers its backend through package entry points. In a frozen
(PyInstaller) app that discovery often finds nothing and falls back to the `fail` backend,
so gpshare names the backend itself:

* Windows: Credential Manager (`keyring.backends.Windows.WinVaultKeyring`);
* macOS: the login Keychain (`keyring.backends.macOS.Keyring`);
* Linux and others: the freedesktop Secret Service (`keyring.backends.SecretService.Keyring`,
  i.e. GNOME Keyring or KWallet 6) when a D-Bus session bus is reachable and the service
  answers; otherwise nothing.

`None` means "no secure keyring here: type your password each time". A plaintext or
"null" backend is never chosen.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

log = logging.getLogger(__name__)


def dbus_session_reachable() -> bool:
    """True if a D-Bus session bus address is known (cheap check, no connection made)."""
    address = os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
    if address:
        return True
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return runtime is not None and runtime != "" and Path(runtime, "bus").exists()


def _usable(backend_class: type[KeyringBackend]) -> bool:
    """The backend's own viability check: its `priority` is > 0 and does not raise."""
    try:
        priority = backend_class.priority  # a class property that raises when unusable
    except Exception as exc:  # keyring backends signal "unusable" with RuntimeError & co.
        log.info("keyring backend %s unusable: %s", backend_class.__module__, exc)
        return False
    return isinstance(priority, int | float) and priority > 0


def select_backend(platform: str | None = None) -> KeyringBackend | None:
    """The keyring backend for this platform, or None when there is no usable secure one."""
    platform = platform or sys.platform
    backend_class: type[KeyringBackend]
    try:
        if platform == "win32":
            from keyring.backends.Windows import WinVaultKeyring

            backend_class = WinVaultKeyring
        elif platform == "darwin":
            from keyring.backends import macOS

            backend_class = macOS.Keyring
        else:
            if not dbus_session_reachable():
                return None
            from keyring.backends import SecretService

            backend_class = SecretService.Keyring
    except ImportError as exc:  # e.g. a frozen build that left the backend out
        log.warning("keyring backend for %s could not be imported: %s", platform, exc)
        return None
    if not _usable(backend_class):
        return None
    return backend_class()


def install_backend() -> KeyringBackend | None:
    """Select the platform's backend and make it keyring's default; return it (or None).

    When nothing usable is found keyring is left as it is (on a headless machine that is the
    `fail` backend, which gpshare reports as "no keyring, type your password").
    """
    backend = select_backend()
    if backend is not None:
        import keyring

        keyring.set_keyring(backend)
    return backend
