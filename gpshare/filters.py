"""Filters for record and audit lists: plain data the UI, CLI and services build and the store
reads, so screens can filter without importing storage."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AuditFilter", "RecordFilter"]


@dataclass(frozen=True)
class RecordFilter:
    """Filters for record lists; every field optional."""

    clinician: str | None = None
    status: str | None = None
    pathway: str | None = None
    consent_basis: str | None = None
    child_nhs: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    search: str | None = None
    record_ids: tuple[str, ...] | None = None
    # Only records whose stored next action fell due before this ISO date ("overdue only").
    overdue_on: str | None = None


@dataclass(frozen=True)
class AuditFilter:
    """Filters for the audit log; every field optional."""

    actor: str | None = None
    action: str | None = None
    record_id: str | None = None
    date_from: str | None = None
    date_to: str | None = None
