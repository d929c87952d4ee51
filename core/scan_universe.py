"""A universe's daily bars as the scanner reads them: one float64 array per field, of
shape (bars, symbols), each symbol's history right-aligned so its latest bar is the last
row. A symbol with a shorter history has NaN rows on top; no column has a gap.

Right-aligned rather than by date: every indicator then runs on each symbol's own bars,
as `ta` would on that symbol alone (a symbol that missed a session would otherwise get a
NaN in the middle of its averages), and the current values are all in the last row.
`day_numbers` keeps each row's date (days since 1970-01-01; -1 above a history).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BAR_FIELDS = ("open", "high", "low", "close", "volume")
EPOCH = date(1970, 1, 1)


def day_number(day: date) -> int:
    return (day - EPOCH).days


def number_day(number: int) -> date:
    return date.fromordinal(EPOCH.toordinal() + number)


@dataclass(slots=True)
class UniverseBars:
    symbols: list[str]
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    day_numbers: IntArray
    lengths: IntArray  # bars of each symbol's history

    @classmethod
    def from_frames(cls, frames: Mapping[str, pd.DataFrame], symbols: Sequence[str] | None = None,
                    through: date | None = None) -> UniverseBars:
        """The bars of `symbols` (all of `frames` by default, in that order) up to and
        including `through` (all of them by default). Each frame has a DatetimeIndex
        and float columns open, high, low, close and volume."""
        names = list(frames) if symbols is None else list(symbols)
        histories: list[tuple[IntArray, FloatArray]] = []
        for symbol in names:
            frame = frames[symbol]
            days = np.asarray(frame.index.values).astype("datetime64[D]").astype(np.int64)
            values = frame[list(BAR_FIELDS)].to_numpy(dtype=np.float64)
            if through is not None:
                stop = int(np.searchsorted(days, day_number(through), side="right"))
                days, values = days[:stop], values[:stop]
            histories.append((days, values))
        return cls.from_arrays(names, histories)

    @classmethod
    def from_arrays(cls, symbols: list[str],
                    histories: Sequence[tuple[IntArray, FloatArray]]) -> UniverseBars:
        """From each symbol's day numbers and its (bars, 5) array of open, high, low,
        close and volume, oldest first."""
        lengths = np.array([len(days) for days, _ in histories], dtype=np.int64)
        depth = int(lengths.max(initial=0))
        width = len(symbols)
        fields = np.full((len(BAR_FIELDS), depth, width), np.nan)
        day_numbers = np.full((depth, width), -1, dtype=np.int64)
        for column, (days, values) in enumerate(histories):
            count = len(days)
            if count:
                fields[:, depth - count:, column] = values.T
                day_numbers[depth - count:, column] = days
        return cls(symbols, fields[0], fields[1], fields[2], fields[3], fields[4],
                   day_numbers, lengths)

    @property
    def last_days(self) -> IntArray:
        """Each symbol's latest date as a day number (-1 for an empty history)."""
        if not len(self.day_numbers):
            return np.full(len(self.symbols), -1, dtype=np.int64)
        last: IntArray = self.day_numbers[-1]
        return last

    def field(self, name: str) -> FloatArray:
        if name not in BAR_FIELDS:
            raise KeyError(name)
        values: FloatArray = getattr(self, name)
        return values
