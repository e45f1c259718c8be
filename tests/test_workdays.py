"""Working days across weekends, bank holidays and practice closures."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from gpshare.workdays import (
    add_working_days,
    bank_holidays,
    easter_sunday,
    is_working_day,
    working_days_between,
)


def test_known_bank_holidays_match_gov_uk():
    assert bank_holidays(2026) == {
        date(2026, 1, 1),
        date(2026, 4, 3),
        date(2026, 4, 6),
        date(2026, 5, 4),
        date(2026, 5, 25),
        date(2026, 8, 31),
        date(2026, 12, 25),
        date(2026, 12, 28),
    }
    assert bank_holidays(2027) == {
        date(2027, 1, 1),
        date(2027, 3, 26),
        date(2027, 3, 29),
        date(2027, 5, 3),
        date(2027, 5, 31),
        date(2027, 8, 30),
        date(2027, 12, 27),
        date(2027, 12, 28),
    }
    assert date(2022, 1, 3) in bank_holidays(2022)  # New Year's Day on Saturday -> Monday
    assert date(2023, 5, 8) in bank_holidays(2023)  # one-off coronation holiday
    assert date(2020, 5, 8) in bank_holidays(2020) and date(2020, 5, 4) not in bank_holidays(2020)


def test_easter():
    assert [easter_sunday(y) for y in (2024, 2025, 2026, 2027)] == [
        date(2024, 3, 31),
        date(2025, 4, 20),
        date(2026, 4, 5),
        date(2027, 3, 28),
    ]


def test_friday_referral_is_due_monday_and_christmas_skips_bank_holidays():
    assert add_working_days(date(2026, 11, 27), 1) == date(2026, 11, 30)  # Fri -> Mon
    assert add_working_days(date(2026, 12, 24), 1) == date(
        2026, 12, 29
    )  # Thu 24 -> Tue 29 (25, 28 holidays)
    assert add_working_days(date(2026, 4, 2), 1) == date(
        2026, 4, 7
    )  # Thu before Easter -> Tue after


def test_practice_closure_days_are_skipped():
    closures = [date(2026, 11, 30)]
    assert add_working_days(date(2026, 11, 27), 1, closures) == date(2026, 12, 1)
    assert not is_working_day(date(2026, 11, 30), closures)


@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
    st.integers(min_value=0, max_value=30),
)
def test_adding_then_counting_round_trips(start, n):
    end = add_working_days(start, n)
    assert working_days_between(start, end) == n
    assert n == 0 or is_working_day(end)
