"""What the replay keeps per streamed symbol: its daily bars as arrays (a session found
by binary search) and the state of today's intraday path."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from core.model import Instrument
from data.intraday import DayPath


@dataclass(slots=True)
class DailyArrays:
    """A symbol's daily bars as arrays, for O(log n) lookup of a session."""

    dates: np.ndarray  # datetime64[D]
    ohlcv: np.ndarray  # float64, shape (n, 5): open high low close volume

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> DailyArrays:
        dates = frame.index.values.astype("datetime64[D]")
        values = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype="float64")
        return cls(dates, values)

    def row(self, day: date) -> np.ndarray | None:
        key = np.datetime64(day, "D")
        i = int(np.searchsorted(self.dates, key))
        if i < len(self.dates) and self.dates[i] == key:
            return self.ohlcv[i]  # type: ignore[no-any-return]
        return None

    def before(self, day: date) -> int:
        """How many bars are strictly before `day`."""
        return int(np.searchsorted(self.dates, np.datetime64(day, "D")))


@dataclass(slots=True)
class ReplaySymbol:
    """One streamed symbol: its daily bars, and where today's path has got to."""

    instrument: Instrument
    daily: DailyArrays
    phase: float  # fraction of a step this symbol's prints lag the grid, to desynchronise
    path: DayPath | None = None
    emitted: int = -1  # last step index streamed
