"""NHS number: Modulus 11 check, messages and 3-3-4 formatting (domain.md §9)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpshare import nhs_number
from gpshare.nhs_number import check_digit, format_334, is_valid, normalise, problem

VALID = [
    "9434765919",
    "9434765870",
    "4010232137",
    "9000000009",
    "6541003238",
    "4505577104",
    "9876543210",
]


@pytest.mark.parametrize("number", VALID)
def test_worked_valid_examples(number: str) -> None:
    assert problem(number) is None
    assert is_valid(number)


@pytest.mark.parametrize("number", VALID)
def test_valid_with_spaces_and_hyphens(number: str) -> None:
    spaced = f"{number[:3]} {number[3:6]} {number[6:]}"
    hyphened = f"{number[:3]}-{number[3:6]}-{number[6:]}"
    assert is_valid(spaced) and is_valid(hyphened) and is_valid(f"  {spaced}  ")
    assert normalise(spaced) == number == normalise(hyphened)


def test_check_computes_to_ten_is_never_issued() -> None:
    message = problem("1234567890")
    assert message is not None
    assert "10" in message and "never issued" in message
    assert "record" in message  # how to fix


def test_wrong_check_digit_is_a_typing_slip() -> None:
    message = problem("4857773456")  # the 485 777 3456 display example: should end 7
    assert message is not None
    assert "check digit" in message and "doesn't match" in message
    assert "typing slip" in message and "record" in message
    assert is_valid("4857773457")


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("943476591", ["10 digits", "has 9"]),
        ("94347659190", ["10 digits", "has 11"]),
        ("", ["empty"]),
        ("   ", ["empty"]),
        ("94347659l9", ["only digits", "“l”"]),
        ("943/476/5919", ["only digits", "“/”"]),
        ("９４３４７６５９１９", ["only digits"]),  # full-width digits are not accepted
    ],
)
def test_specific_messages(raw: str, words: list[str]) -> None:
    message = problem(raw)
    assert message is not None
    for word in words:
        assert word in message


def test_non_string_is_a_problem_not_a_crash() -> None:
    assert problem(9434765919) is not None  # type: ignore[arg-type]
    assert normalise(None) is None  # type: ignore[arg-type]


def test_normalise_shape_only() -> None:
    assert normalise("123 456 7890") == "1234567890"  # shape is fine even if check fails
    assert normalise("12345") is None
    assert normalise("abcdefghij") is None


def test_format_334() -> None:
    assert format_334("9434765870") == "943 476 5870"
    assert format_334("943-476-5870") == "943 476 5870"
    assert format_334(" 12345 ") == "12345"  # not 10 digits: shown as typed


def test_check_digit_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        check_digit("12345678")
    assert check_digit("123456789") is None


nine_digits = st.text(alphabet="0123456789", min_size=9, max_size=9)


@given(nine_digits)
def test_property_computed_check_digit_is_valid(first_nine: str) -> None:
    check = check_digit(first_nine)
    if check is None:
        for last in "0123456789":
            assert not is_valid(first_nine + last)
    else:
        assert is_valid(first_nine + str(check))
        assert format_334(first_nine + str(check)).replace(" ", "") == first_nine + str(check)


@given(nine_digits, st.integers(0, 9), st.integers(1, 9))
def test_property_single_digit_change_is_detected(
    first_nine: str, position: int, delta: int
) -> None:
    check = check_digit(first_nine)
    if check is None:
        return
    number = first_nine + str(check)
    changed = number[:position] + str((int(number[position]) + delta) % 10) + number[position + 1 :]
    assert not is_valid(changed)


@given(nine_digits, st.integers(0, 8))
def test_property_adjacent_transposition_is_detected(first_nine: str, position: int) -> None:
    check = check_digit(first_nine)
    if check is None:
        return
    number = first_nine + str(check)
    a, b = number[position], number[position + 1]
    if a == b:
        return
    swapped = number[:position] + b + a + number[position + 2 :]
    assert not is_valid(swapped)


@given(st.text())
def test_property_never_raises(raw: str) -> None:
    message = problem(raw)
    assert (message is None) == is_valid(raw)
    if message is None:
        assert normalise(raw) is not None
    format_334(raw)


def test_module_exports() -> None:
    assert callable(nhs_number.normalise) and callable(nhs_number.problem)
