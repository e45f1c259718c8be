"""Errors the service layer raises; `str(error)` is always a message a user can act on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gpshare.store.errors import StoreError


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
