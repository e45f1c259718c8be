"""Errors raised by the store; defined in gpshare.errors (a domain module) so the UI and CLI
can catch them without importing gpshare.store. Re-exported here for store code."""

from __future__ import annotations

from gpshare.errors import (
    CorruptDatabaseError,
    DatabaseError,
    DisabledUserError,
    EnrolmentSecretError,
    KeyringUnavailableError,
    LockedOutError,
    NotAVaultError,
    RollbackError,
    StorageWriteError,
    StoreError,
    TamperedError,
    UnknownUserError,
    VaultBusyError,
    VaultFormatError,
    WrongPasswordError,
)

__all__ = [
    "CorruptDatabaseError",
    "DatabaseError",
    "DisabledUserError",
    "EnrolmentSecretError",
    "KeyringUnavailableError",
    "LockedOutError",
    "NotAVaultError",
    "RollbackError",
    "StorageWriteError",
    "StoreError",
    "TamperedError",
    "UnknownUserError",
    "VaultBusyError",
    "VaultFormatError",
    "WrongPasswordError",
]
