"""Validation of items and scripts: every problem reported at once."""

from __future__ import annotations

import pytest

from orchestration.batch.base import BatchValidationError
from orchestration.batch.validate import split_arguments, validate_items, validate_script


def test_it_ignores_blank_lines_and_surrounding_spaces() -> None:
    assert validate_items("\n  1056215p \n\n1056216p\n\n") == ["1056215p", "1056216p"]


def test_it_reports_every_item_problem_at_once() -> None:
    text = "a\nb/c\na\n$(rm -rf)\nb/c\nok\n" + "x" * 201 + "\n"
    with pytest.raises(BatchValidationError) as info:
        validate_items(text, max_items=5)
    problems = info.value.problems
    assert "There are 7 items; the limit is 5." in problems
    assert "Items longer than 200 characters on line(s) 7." in problems
    assert "Items may not contain '/' (they become part of file names): line(s) 2, 5." in problems
    assert "Items may not contain '$' (they become part of file names): line(s) 4." in problems
    assert "Duplicate items: 'a' (lines 1, 3), 'b/c' (lines 2, 5)." in problems


def test_it_allows_duplicates_when_asked() -> None:
    assert validate_items("a\na\n", allow_duplicates=True) == ["a", "a"]


def test_it_refuses_an_empty_item_list() -> None:
    with pytest.raises(BatchValidationError) as info:
        validate_items("\n \n")
    assert info.value.problems == ["There are no items: give one item per line."]


def test_it_refuses_a_script_without_shebang() -> None:
    with pytest.raises(BatchValidationError) as info:
        validate_script("echo hi\n")
    assert info.value.problems[0].startswith("The script must start with a shebang line")


def test_it_reports_every_script_problem_at_once() -> None:
    with pytest.raises(BatchValidationError) as info:
        validate_script("echo \x00\r hi\n" + "x" * 300_000)
    assert len(info.value.problems) == 4


def test_it_normalises_windows_line_ends(seed_script: str) -> None:
    assert validate_script(seed_script.replace("\n", "\r\n")) == seed_script


def test_it_splits_old_syntax_arguments_on_white_space() -> None:
    assert split_arguments("  a  b\tc ") == ["a", "b", "c"]
    assert split_arguments('"" ') == []
