"""The client-side ``group=`` filter (mt5_api_notes.md section 7)."""

from __future__ import annotations

import fnmatch

from hypothesis import given
from hypothesis import strategies as st

from aiomt5.sim._group import MAX_TOKEN_LENGTH, compile_group, glob_match

NAMES = ("EURUSD", "GBPUSD", "USDJPY", "EURGBP", "GBPJPY", "USDRUB", "RUBUSD", "XAUUSD", "BTCUSD")


def kept(group: str, names: tuple[str, ...] = NAMES) -> list[str]:
    keep = compile_group(group)
    return [name for name in names if keep(name)]


def test_star_then_exclusions_keeps_names_without_usd_or_eur() -> None:
    assert kept("*,!*USD*,!*EUR*") == ["GBPJPY"]


def test_infix_group_keeps_names_containing_ru() -> None:
    assert kept("*RU*") == ["EURUSD", "USDRUB", "RUBUSD"]  # eu-RU-sd contains RU too


def test_spaces_around_tokens_are_dropped() -> None:
    assert kept("*, !EURUSD") == [name for name in NAMES if name != "EURUSD"]


def test_exclusion_with_space_after_comma_only_removes_exact_name() -> None:
    # "*, !EUR": "!EUR" has no star, so it only excludes a symbol literally named EUR.
    assert kept("*, !EUR", (*NAMES, "EUR")) == list(NAMES)


def test_exclusion_glob_after_space_removes_every_match() -> None:
    assert kept("*, !EUR*") == [name for name in NAMES if not name.startswith("EUR")]


def test_trailing_star_matches_prefix() -> None:
    assert glob_match("EUR*", "EURUSD")


def test_token_without_star_does_not_match_longer_name() -> None:
    assert not glob_match("EUR", "EURUSD")


def test_trailing_star_matches_empty_rest() -> None:
    assert glob_match("EUR*", "EUR")


def test_simplified_backtracking_rejects_aab_in_aaab() -> None:
    assert not glob_match("*AAB", "AAAB")


def test_single_character_restart_still_matches() -> None:
    assert glob_match("*AB", "AAB")


def test_suffix_glob_matches_repeated_prefix() -> None:
    assert glob_match("*USD", "USDUSD")


def test_matching_is_case_sensitive() -> None:
    assert kept("eur*") == []


def test_question_mark_is_literal() -> None:
    assert not glob_match("EURUS?", "EURUSD")
    assert glob_match("EURUS?", "EURUS?")


def test_exclusion_wins_regardless_of_position() -> None:
    assert kept("!EUR*,*USD") == kept("*USD,!EUR*") == ["GBPUSD", "RUBUSD", "XAUUSD", "BTCUSD"]


def test_only_exclusions_match_nothing() -> None:
    assert kept("!EUR*,!GBP*") == []


def test_empty_group_matches_nothing() -> None:
    assert kept("") == []


def test_several_positive_tokens_are_a_union() -> None:
    assert kept("EUR*,GBP*") == ["EURUSD", "GBPUSD", "EURGBP", "GBPJPY"]


def test_middle_star_spans_characters() -> None:
    assert kept("E*D") == ["EURUSD"]


def test_long_token_is_cut_to_255_characters() -> None:
    name = "A" * MAX_TOKEN_LENGTH
    assert compile_group(name + "XYZ")(name)


def test_exclusion_marker_counts_towards_token_length() -> None:
    name = "B" * MAX_TOKEN_LENGTH
    group = compile_group("*,!" + name)
    assert group(name)  # the "!" token was cut to 254 B's, so it no longer matches
    assert not group(name[:-1])


@given(
    pattern=st.text(alphabet="AB*", max_size=6),
    name=st.text(alphabet="AB", max_size=8),
)
def test_simplified_match_never_accepts_what_a_full_glob_rejects(pattern: str, name: str) -> None:
    if glob_match(pattern, name):
        assert fnmatch.fnmatchcase(name, pattern)


@given(prefix=st.text(alphabet="ABC", max_size=5), rest=st.text(alphabet="ABC", max_size=5))
def test_trailing_star_agrees_with_full_glob(prefix: str, rest: str) -> None:
    assert glob_match(prefix + "*", prefix + rest)
