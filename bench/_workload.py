"""Shared by the benchmarks: the synthetic symbol universe they load."""

from __future__ import annotations

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def symbol_names(count: int) -> list[str]:
    """`count` distinct well-formed 4-letter tickers: AAAA, AAAB, ..."""
    names = []
    for i in range(count):
        a, rest = divmod(i, 26**3)
        b, rest = divmod(rest, 26**2)
        c, d = divmod(rest, 26)
        names.append(LETTERS[a] + LETTERS[b] + LETTERS[c] + LETTERS[d])
    return names
