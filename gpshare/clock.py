"""Injectable clock: production code asks a Clock for the time so tests can fix it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything that can tell the current UTC time."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock, always timezone-aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FixedClock:
    """A clock for tests: returns `current` until advanced."""

    current: datetime = field(default_factory=lambda: datetime(2026, 11, 25, 10, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.current = self.current + timedelta(seconds=seconds)


def today(clock: Clock) -> date:
    """The UK calendar date for the clock's instant (UTC is close enough for a date in England
    except around midnight in summer; use Europe/London when available)."""
    try:
        from zoneinfo import ZoneInfo

        return clock.now().astimezone(ZoneInfo("Europe/London")).date()
    except Exception:  # tzdata missing on some minimal systems
        return clock.now().date()
