"""NHS number validation (Modulus 11) and 3-3-4 formatting.

The check follows the NHS Data Dictionary algorithm (domain.md §9): multiply digits 1-9 by
the weights 10..2, sum, take the remainder mod 11; the check digit is 11 - remainder, where
11 means 0 and 10 means the number can never have been issued. The tenth digit must equal
the check digit.
"""

from __future__ import annotations

_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)
_SEPARATORS = str.maketrans("", "", " -\t\u00a0")


def _strip(raw: str) -> str:
    """Remove spaces (including non-breaking ones), tabs and hyphens."""
    return raw.translate(_SEPARATORS)


def _all_ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def check_digit(first_nine: str) -> int | None:
    """The check digit for nine ASCII digits, or None when it computes to 10 (never issued)."""
    if len(first_nine) != 9 or not _all_ascii_digits(first_nine):
        raise ValueError("check_digit needs exactly nine digits")
    total = sum(int(d) * w for d, w in zip(first_nine, _WEIGHTS, strict=True))
    check = 11 - (total % 11)
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def normalise(raw: str) -> str | None:
    """The 10 digits of `raw` with spaces and hyphens removed, or None if that is not 10 digits.

    This checks the shape only; use `problem` or `is_valid` for the check digit.
    """
    if not isinstance(raw, str):
        return None
    digits = _strip(raw)
    if len(digits) == 10 and _all_ascii_digits(digits):
        return digits
    return None


def problem(raw: str) -> str | None:
    """None when `raw` is a valid NHS number; otherwise a plain-English message saying what is
    wrong and how to put it right."""
    if not isinstance(raw, str):
        return (
            "The NHS number must be typed as text: enter the 10 digits, for example 943 476 5919."
        )
    digits = _strip(raw)
    if not digits:
        return "The NHS number is empty: enter the 10 digits from the child's record."
    if not _all_ascii_digits(digits):
        bad = next(ch for ch in digits if not (ch.isascii() and ch.isdigit()))
        return (
            f"An NHS number contains only digits, but this one contains “{bad}”. "
            "Remove anything that is not a digit (spaces and hyphens are fine)."
        )
    if len(digits) != 10:
        return (
            f"An NHS number has 10 digits, but this one has {len(digits)}. "
            "Check it against the child's record and type all 10 digits."
        )
    expected = check_digit(digits[:9])
    if expected is None:
        return (
            "This is not a real NHS number: its check digit computes to 10, a value that is never "
            "issued. Check the number against the child's record."
        )
    if expected != int(digits[9]):
        return (
            "The last digit (the check digit) doesn't match the other nine, so this is probably a "
            "typing slip. Check the number against the child's record."
        )
    return None


def is_valid(raw: str) -> bool:
    """True when `raw` (spaces and hyphens allowed) is a valid NHS number."""
    return problem(raw) is None


def format_334(digits: str) -> str:
    """Show an NHS number as 3-3-4 ("943 476 5870"); text that is not 10 digits comes back
    unchanged (stripped), so a display never hides what was typed."""
    clean = normalise(digits)
    if clean is None:
        return digits.strip() if isinstance(digits, str) else ""
    return f"{clean[:3]} {clean[3:6]} {clean[6:]}"
