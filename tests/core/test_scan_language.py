"""The scan language: what it reads, what it refuses (and where), and that no input can
crash it, hang it or run code."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.scan_language import parse, tokenize
from core.scan_syntax import (
    FIELDS,
    FUNCTIONS,
    MAX_DEPTH,
    MAX_TEXT_LENGTH,
    Ago,
    Arithmetic,
    Call,
    Comparison,
    Field,
    Logical,
    Node,
    Not,
    Number,
    Scan,
    ScanError,
    walk,
)


def _outcome(text: str) -> Scan | ScanError:
    """The scan, or the error refusing it: any other exception fails the test."""
    try:
        return parse(text)
    except ScanError as error:
        return error


def _refused(text: str) -> ScanError:
    with pytest.raises(ScanError) as caught:
        parse(text)
    return caught.value


# ------------------------------------------------------------------ what it reads


def test_the_issue_example_reads_as_written() -> None:
    scan = parse("rsi(14) < 30 and close > sma(close, 200)")
    assert scan.condition == Logical(
        "and",
        Comparison("<", Call("rsi", (Field("close", 1),), (14.0,), 1), Number(30, 11), 9),
        Comparison(">", Field("close", 18), Call("sma", (Field("close", 30),), (200.0,), 26),
                   24),
        14)
    assert scan.sort_by is None
    assert scan.limit is None


def test_sort_and_limit() -> None:
    scan = parse("volume > 2 * avg(volume, 20) sort by rsi(14) asc limit 20")
    assert scan.sort_by == Call("rsi", (Field("close", 38),), (14.0,), 38)
    assert scan.descending is False
    assert scan.limit == 20
    assert parse("close > 1 sort by volume").descending is True


def test_defaults_fill_in_and_case_and_spacing_are_forgiven() -> None:
    assert _shape(parse("RSI() <30").condition) == _shape(parse("rsi(close, 14) < 30").condition)
    assert parse("macd() > macd_signal()").render() == (
        "(macd(close, 12, 26) > macd_signal(close, 12, 26, 9))")
    assert parse("highest(20) > 0").render() == "(highest(high, 20) > 0)"
    assert parse("lowest(low, 20) > 0").render() == "(lowest(low, 20) > 0)"
    assert parse("bbands_width(close, 20, 2.5) < 4").render() == (
        "(bbands_width(close, 20, 2.5) < 4)")


def test_precedence_bars_ago_and_negatives() -> None:
    scan = parse("close - close[1] * 2 > -3 or not (open < low)")
    assert scan.render() == "(((close - (close[1] * 2)) > -3) or (not (open < low)))"
    assert _shape(parse("close[0] > 1").condition) == _shape(parse("close > 1").condition)
    ago = parse("sma(close, 10)[3] > 1").condition
    assert isinstance(ago, Comparison)
    assert isinstance(ago.left, Ago)
    assert ago.left.bars == 3


def test_crossings_are_conditions_and_take_values() -> None:
    scan = parse("crosses_above(sma(close, 50), sma(close, 200)) and not crosses_below(close, 10)")
    kinds = {node.kind for node in walk(scan.condition) if isinstance(node, Call)
             and node.name.startswith("crosses")}
    assert kinds == {"boolean"}


def test_lookback_adds_windows_and_bars_ago() -> None:
    assert parse("close > sma(close, 200)").lookback == 200
    assert parse("close[5] > highest(high, 20)[1]").lookback == 21
    assert parse("crosses_above(sma(close, 10), sma(close, 30))").lookback == 31
    assert parse("rsi(close[3], 14) > 1").lookback == 17
    assert parse("adx(14) > 20").lookback == 28


@pytest.mark.parametrize("text", [
    "rsi(14) < 30",
    "crosses_above(sma(close, 50), sma(close, 200))",
    "volume > 3 * avg(volume, 20)",
    "close >= highest(high, 252)[1]",
    "open > high[1] * 1.02 or open < low[1] * 0.98",
    "bbands_width(close, 20, 2) < lowest(bbands_width(close, 20, 2), 120) * 1.05",
    "pct_change > 5 and pct_change(close, 5) < 10 sort by pct_change desc limit 5",
    "adx(14) > 25 and atr(14) / close * 100 < 3 and stoch(14) < 20",
    "vwap > 0 and change != 0 and not (ema(20) <= ema(50))",
    "macd(close, 12, 26) - macd_signal(close, 12, 26, 9) > 0",
])
def test_canonical_text_reads_back_to_the_same_scan(text: str) -> None:
    scan = parse(text)
    again = parse(scan.render())
    assert again.render() == scan.render()
    assert _shape(again.condition) == _shape(scan.condition)


# ------------------------------------------------------------------ what it refuses


@pytest.mark.parametrize(("text", "column", "words"), [
    ("close > sma(close, 200", 23, "expected ')' or ','"),
    ("close >", 8, "expected a value or a condition, found the end"),
    ("", 1, "an empty scan"),
    ("close", 1, "must be a condition"),
    ("close > 1 and volume", 15, "'and' joins conditions"),
    ("rsi(14) < 30 or", 16, "found the end"),
    ("foo > 1", 1, "unknown name 'foo'"),
    ("close > bar(3)", 9, "unknown name 'bar'"),
    ("sma > 3", 1, "sma is a function"),
    ("close(3) > 1", 1, "close is a field, not a function"),
    ("rsi(1) < 30", 5, "n must be from 2"),
    ("rsi(close, 14, 3) < 30", 16, "too many arguments"),
    ("avg(20) > 1", 5, "avg needs a series first"),
    ("crosses_above(close) ", 1, "takes two values"),
    ("sma(close, 2.5) > 1", 12, "whole number of bars"),
    ("sma(close, n) > 1", 12, "unknown name 'n'"),
    ("sma(close, volume) > 1", 12, "n must be a number"),
    ("atr(close, 14) > 1", 5, "reads high, low and close itself"),
    ("macd(close, 26, 12) > 0", 19, "fast (26) must be shorter than slow (12)"),
    ("close > 1 < 2", 11, "comparisons do not chain"),
    ("1 < 2", 3, "compares two numbers"),
    ("close[1][2] > 1", 9, "one [n] is enough"),
    ("close[1.5] > 1", 7, "a whole number for the bars ago"),
    ("close[2000] > 1", 7, "the bars ago must be from 0 to 1,000"),
    ("5[1] > close", 2, "[n] means n bars ago"),
    ("close / 0 > 1", 9, "division by zero"),
    ("close = 1", 7, "write == to compare"),
    ("close > 1 && open > 1", 11, "write 'and'"),
    ("close > 1 sort volume", 16, "expected 'by' after 'sort'"),
    ("close > 1 limit 0", 17, "the limit must be from 1"),
    ("close > 1 sort by rsi(14) < 3", 27, "expected the end of the scan"),
    ("close > 1 sort by close > 1", 25, "expected the end of the scan"),
    ("not close", 5, "'not' takes a condition"),
    ("sma(close > 1, 3) > 1", 11, "takes values, not conditions"),
    ("+close > 1", 1, "a leading + is not needed"),
    ("close > 1e99", 9, "a number runs into letters"),
    ("close > 99999999999999999", 9, "larger than any price"),
    ("close > sma(close[1000], 1000)[500]", 1, "2,500 bars of history"),
])
def test_each_error_names_its_column(text: str, column: int, words: str) -> None:
    error = _refused(text)
    assert words in error.message, error.message
    assert error.column == column, error.message
    assert str(error).startswith(f"column {column}: ")
    assert error.pointer(text).splitlines()[1].index("^") == column - 1


@pytest.mark.parametrize(("text", "words"), [
    ("__import__('os').system('ls')", "strings are not part"),
    ("__import__ > 1", "names with _ in front"),
    ("().__class__", "attribute access"),
    ("close.__class__ > 1", "attribute access"),
    ("9**9**9", "** is not an operator"),
    ("lambda: 1", "not part of the scan language"),
    ("[x for x in close] > 1", "[n] means n bars ago"),
    ("eval(close) > 1", "not part of the scan language"),
    ("close > 1; import os", "one scan at a time"),
    ("close > 1 # comment", "comments are not part"),
    ("{1: 2}", "braces are not part"),
    ("close > `ls`", "not part of the scan language"),
    ("close > \uff10", "not part of the scan language"),  # a full-width digit
])
def test_hostile_inputs_are_refused_without_evaluating_anything(text: str, words: str) -> None:
    assert words in _refused(text).message


def test_a_deep_nesting_is_refused_at_the_depth_limit() -> None:
    text = "(" * 500 + "close > 1" + ")" * 500
    error = _refused(text)
    assert f"deeper than {MAX_DEPTH}" in error.message
    assert error.column == MAX_DEPTH + 1
    assert "at most 2,000 characters" in _refused("(" * 10_000 + "close > 1" + ")" * 10_000).message
    assert "deeper" in _refused("-" * 1_000 + "close > 1").message
    assert "deeper" in _refused("not " * 400 + "close > 1").message


def test_a_huge_text_is_refused_before_it_is_read() -> None:
    started = time.perf_counter()
    error = _refused("close > 1 and " * 80_000)  # about 1 MB
    assert "at most 2,000 characters" in error.message
    assert time.perf_counter() - started < 0.5


def test_too_many_parts_are_refused() -> None:
    text = " and ".join(["close > 1"] * 60)  # within the length, beyond the parts
    assert len(text) <= MAX_TEXT_LENGTH
    assert "more than 200 parts" in _refused(text).message


# ------------------------------------------------------------------ fuzz

_ALPHABET = st.sampled_from(
    list("()[],.+-*/<>=!&|'\"_ 0123456789abcdefghijklmnopqrstuvwxyz\n\t%^:;#@{}\\")
    + ["and ", "or ", "not ", "sort by ", "limit ", "asc", "desc", "1.5"]
    + [f"{name}(" for name in FUNCTIONS] + list(FIELDS))


@settings(max_examples=400, deadline=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ALPHABET, max_size=60).map("".join))
def test_random_text_parses_or_is_refused_never_crashes(text: str) -> None:
    outcome = _outcome(text)
    if isinstance(outcome, ScanError):
        # The caret lands inside the text, or just after it for "the end of the scan".
        assert 1 <= outcome.column <= len(text) + 1
        assert outcome.pointer(text).splitlines()[-1].index("^") == outcome.column - 1
    else:
        assert parse(outcome.render()).render() == outcome.render()


@settings(max_examples=200, deadline=500)
@given(st.text(max_size=300))
def test_arbitrary_unicode_never_crashes(text: str) -> None:
    assert isinstance(_outcome(text), Scan | ScanError)


def _values(depth: int) -> st.SearchStrategy[str]:
    leaf = st.one_of(
        st.sampled_from(FIELDS),
        st.integers(0, 10_000).map(str),
        st.tuples(st.sampled_from(["sma", "ema", "rsi", "highest", "lowest", "avg"]),
                  st.sampled_from(FIELDS), st.integers(2, 300)).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"),
        st.tuples(st.sampled_from(FIELDS), st.integers(0, 50)).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.sampled_from(["atr(14)", "adx(20)", "stoch(14)", "macd()", "macd_signal()"]),
    )
    if depth == 0:
        return leaf
    inner = _values(depth - 1)
    return st.one_of(leaf, st.tuples(inner, st.sampled_from(["+", "-", "*"]), inner).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})"), inner.map(lambda v: f"-{v}"))


def _conditions(depth: int) -> st.SearchStrategy[str]:
    values = _values(2)
    leaf = st.one_of(
        st.tuples(st.sampled_from(FIELDS), st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
                  values).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        st.tuples(st.sampled_from(["crosses_above", "crosses_below"]), values, values).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"),
    )
    if depth == 0:
        return leaf
    inner = _conditions(depth - 1)
    return st.one_of(leaf, st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})"), inner.map(lambda c: f"not {c}"))


@settings(max_examples=300, deadline=500)
@given(_conditions(3))
def test_random_valid_trees_parse_and_read_back(text: str) -> None:
    scan = _outcome(text)
    if isinstance(scan, ScanError):
        # Only the bounds may refuse a well-formed tree.
        assert any(words in scan.message for words in ("parts", "bars of history",
                                                       "characters", "deeper"))
        return
    assert scan.condition.kind == "boolean"
    assert parse(scan.render()).render() == scan.render()


def test_tokens_carry_their_columns() -> None:
    tokens = tokenize("rsi(14) <= 30")
    assert [(t.text, t.column) for t in tokens] == [
        ("rsi", 1), ("(", 4), ("14", 5), (")", 7), ("<=", 9), ("30", 12), ("", 14)]


def _shape(node: Node) -> object:
    # The tree without columns: the same scan written with other spacing has the same shape.
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Field):
        return node.name
    if isinstance(node, Call):
        return (node.name, tuple(_shape(s) for s in node.series), node.parameters)
    if isinstance(node, Ago):
        return ("ago", _shape(node.operand), node.bars)
    if isinstance(node, Not):
        return ("not", _shape(node.operand))
    if isinstance(node, Arithmetic | Comparison | Logical):
        return (node.operator, _shape(node.left), _shape(node.right))
    return ("neg", _shape(node.operand))


def test_a_misspelt_name_gets_the_nearest_one() -> None:
    with pytest.raises(ScanError, match="did you mean close"):
        parse("rsi(14) > 60 and closed > 5")
    with pytest.raises(ScanError, match="did you mean rsi") as caught:
        parse("rsi2(14) > 3")
    assert caught.value.column == 1
