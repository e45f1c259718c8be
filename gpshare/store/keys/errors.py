"""Errors of the key hierarchy. Each message names what failed and what it means; none ever
contains key material (keys are not formatted into messages, and key objects hide their bytes)."""

from __future__ import annotations

from gpshare.store.errors import StoreError, TamperedError


class KeyHierarchyError(StoreError):
    """Base class for every failure of the key hierarchy primitives."""


class KeyUsageError(KeyHierarchyError):
    """A key was asked to do something its place in the binding table does not allow
    (a label its root does not derive, a wrap purpose that does not match the key)."""


class CiphertextFormatError(KeyHierarchyError):
    """A ciphertext has an unknown format byte or suite id, or is too short to be one."""


class UnwrapError(KeyHierarchyError):
    """An HPKE wrap did not open with this recipient key and binding."""


class CommitmentError(TamperedError, KeyHierarchyError):
    """An unwrapped object key does not match the commitment stored for the object."""


class EnvelopeError(KeyHierarchyError):
    """An encrypted object or summary did not open with this key and binding."""


class RowMacError(TamperedError, KeyHierarchyError):
    """A row's MAC does not match its contents."""


class BundleError(KeyHierarchyError):
    """A user key bundle did not open: wrong password (or enrolment secret), or altered."""


class DirectoryAlteredError(TamperedError, KeyHierarchyError):
    """A key directory entry or rotation statement failed verification against the pin."""


class RecipientDisabledError(KeyHierarchyError):
    """A directory entry is validly signed but marks the user as disabled."""
