"""Working-day arithmetic for England and Wales (no network: bank holidays are computed).

Rules (gov.uk bank-holidays, England and Wales): New Year's Day, Good Friday, Easter
Monday, early May (first Monday), spring (last Monday of May), summer (last Monday of
August), Christmas Day and Boxing Day, with substitute days when those fall at a
weekend. One-off changes announced by government are listed in ONE_OFF_CHANGES; a
practice adds its own closure days (and any future one-off holiday) in Settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from functools import cache

# Moved or extra bank holidays (date removed -> date added, or None -> extra date).
ONE_OFF_CHANGES: dict[int, tuple[tuple[date | None, date | None], ...]] = {
    2020: ((date(2020, 5, 4), date(2020, 5, 8)),),  # early May moved to VE Day
    2022: (
        (date(2022, 5, 30), date(2022, 6, 2)),
        (None, date(2022, 6, 3)),
        (None, date(2022, 9, 19)),
    ),
    2023: ((None, date(2023, 5, 8)),),  # coronation
}


def easter_sunday(year: int) -> date:
    """Gregorian Easter (anonymous algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _first_monday(year: int, month: int) -> date:
    d = date(year, month, 1)
    return d + timedelta(days=(7 - d.weekday()) % 7)


def _last_monday(year: int, month: int) -> date:
    d = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return d - timedelta(days=d.weekday())


@cache
def bank_holidays(year: int) -> frozenset[date]:
    """England and Wales bank holidays for `year`."""
    days: set[date] = set()
    new_year = date(year, 1, 1)
    days.add(new_year + timedelta(days={5: 2, 6: 1}.get(new_year.weekday(), 0)))
    easter = easter_sunday(year)
    days |= {easter - timedelta(days=2), easter + timedelta(days=1)}
    days |= {_first_monday(year, 5), _last_monday(year, 5), _last_monday(year, 8)}
    christmas, boxing = date(year, 12, 25), date(year, 12, 26)
    if christmas.weekday() == 5:  # Saturday: Mon 27 and Tue 28
        days |= {date(year, 12, 27), date(year, 12, 28)}
    elif christmas.weekday() == 6:  # Sunday: Boxing Day Mon 26, substitute Tue 27
        days |= {boxing, date(year, 12, 27)}
    elif christmas.weekday() == 4:  # Friday: Boxing Day on Saturday -> Monday 28
        days |= {christmas, date(year, 12, 28)}
    else:
        days |= {christmas, boxing}
    for removed, added in ONE_OFF_CHANGES.get(year, ()):
        if removed is not None:
            days.discard(removed)
        if added is not None:
            days.add(added)
    return frozenset(days)


def is_working_day(day: date, closures: Iterable[date] = ()) -> bool:
    """Monday–Friday, not a bank holiday, not a practice closure day."""
    return day.weekday() < 5 and day not in bank_holidays(day.year) and day not in set(closures)


def add_working_days(start: date, count: int, closures: Iterable[date] = ()) -> date:
    """The date `count` working days after `start` (start itself is not counted)."""
    closed = frozenset(closures)
    day = start
    remaining = count
    while remaining > 0:
        day += timedelta(days=1)
        if is_working_day(day, closed):
            remaining -= 1
    return day


def working_days_between(start: date, end: date, closures: Iterable[date] = ()) -> int:
    """Working days after `start` up to and including `end` (0 if end <= start)."""
    closed = frozenset(closures)
    count = 0
    day = start
    while day < end:
        day += timedelta(days=1)
        if is_working_day(day, closed):
            count += 1
    return count
