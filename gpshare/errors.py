"""Errors raised by the store and the service layer; `str(error)` is always a message a user
can act on. They live here, outside gpshare.store, so the UI and CLI can catch them without
importing storage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class StoreError(Exception):
    """Base class: `str(error)` is a plain-English message naming the problem and what to do."""


class NotAVaultError(StoreError):
    """The folder does not hold a gpshare vault."""


class VaultFormatError(StoreError):
    """The vault was written by a newer gpshare or is damaged."""


class WrongPasswordError(StoreError):
    """The password (or recovery code) does not open the user's key slot."""


class UnknownUserError(StoreError):
    """No key slot for that username."""


class DisabledUserError(StoreError):
    """The administrator disabled this account."""


class RememberedLoginRevoked(StoreError):
    """A remembered login (keyring slot) a lead or administrator revoked (vault version 2)."""


class LockedOutError(StoreError):
    """Too many recent failed attempts: wait `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TamperedError(StoreError):
    """A file of the vault was changed outside gpshare."""


class RollbackError(TamperedError):
    """The audit log is behind (or different from) a head recorded earlier: events are missing."""


class CorruptDatabaseError(StoreError):
    """records.db cannot be read with the vault key: damaged, truncated or replaced."""


class DatabaseError(StoreError):
    """The storage engine failed in a way it cannot classify (a damaged page, an interrupted
    query, a failed statement). Raised through the storage port instead of the driver's own
    exceptions; the services turn it into a message a practice can act on."""


class ServerUnreachableError(DatabaseError):
    """The practice server (PostgreSQL) could not be reached; the message names it."""


class SaveOutcomeUnknown(ServerUnreachableError):
    """The connection to the practice server broke after a write's COMMIT was sent: the server
    may or may not have applied it (the message says so and how to check). Never replayed."""

    record_id: str | None = None  # the record the write was about, when it named one


class StaleVersionError(StoreError):
    """A sealed draft was saved from an older version than the one stored (another window or
    workstation saved it meanwhile, or it was completed): nothing was written."""


class VaultBusyError(StoreError):
    """Another gpshare window or process has this vault open."""


class StorageWriteError(StoreError):
    """The vault folder could not be written (read-only, disk full…)."""


class EnrolmentSecretError(StoreError):
    """The practice server's enrolment secret is missing here, does not match, or was given
    in a form that is not one (`reason`: "missing", "mismatch" or "malformed")."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class KeyringUnavailableError(StoreError):
    """No usable operating-system keyring on this computer."""


class ServiceError(StoreError):
    """A use case could not be carried out; the message says why and what to do."""


class PermissionDenied(ServiceError):
    """The acting user's role does not allow this (the attempt is audited)."""


class NotFound(ServiceError):
    """No such record, user, letter…"""


class ValidationFailed(ServiceError):
    """Input failed validation; `errors` lists field-level problems."""

    def __init__(self, message: str, errors: Sequence[Any]) -> None:
        super().__init__(message)
        self.errors = list(errors)


class PasswordChangeRequired(PermissionDenied):
    """The acting user still has a one-time password; only changing it is allowed."""


class Cancelled(ServiceError):
    """The user cancelled a long operation; nothing was written."""


class KeyNotHeld(PermissionDenied):
    """The session does not hold the key an action needs (vault version 2): a user whose key
    directory entry a lead has not confirmed yet, an admin (who never holds clinical keys), or
    a lead session opened from a remembered login (no lead key until the password is typed)."""


class ReplicaUnavailable(StoreError):
    """The lead's search replica (lead-index.db, vault version 2) cannot be used: it is
    missing, cannot be read with the lead data key, or was made by another gpshare. It is
    derived data: the caller rebuilds it from the records (`reason` says which case:
    missing, unreadable, outdated, restored)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class LegacyBackupRefused(StoreError):
    """A backup taken before the vault was upgraded to version 2 (decision D3): its database
    is under its own legacy-backup key, which only a safeguarding lead (or the break-glass
    code) opens, and restoring it puts the version-1 vault back. Refused until that is asked
    for explicitly, with a lead present; the message names the command."""
