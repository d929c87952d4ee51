"""The bundled universe as the scanner reads it: every symbol's daily bars at once,
adjusted for splits and dividends as of one day.

The bundle's closes are split-adjusted; its adj_close also takes out dividends, so a
scan over closes alone would read each ex-dividend day as a fall. Over adj_close as the
provider computed it (to the end of the data), a scan dated 2016 would compare today's
live price with averages scaled to 2020. So the adjustment factor (adj_close / close)
is divided by its value on the `as_of` day: history is adjusted for every dividend up
to that day, and on that day prices are the ones the replay streams.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.scan_universe import UniverseBars, day_number
from data.bundle import BundledDailyBars

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def universe_frames(bundle: BundledDailyBars, symbols: Sequence[str]
                    ) -> dict[str, pd.DataFrame]:
    """The cleaned bars of `symbols`: the whole bundle through `load_all`, which also
    writes its disk cache for the next time (`load_many` only reads it)."""
    if set(symbols) >= set(bundle.symbols()):
        every = bundle.load_all()
        return {symbol: every[symbol] for symbol in symbols}
    return bundle.load_many(symbols)


def universe_bars(bundle: BundledDailyBars, symbols: Sequence[str] | None = None, *,
                  through: date, as_of: date | None = None) -> UniverseBars:
    """The daily bars of `symbols` (the whole bundle by default; unknown ones are
    left out) up to and including `through`, adjusted as of `as_of` (default
    `through`; the factor of the last bar on or before it)."""
    names = bundle.symbols() if symbols is None else [s for s in symbols if s in bundle]
    last = day_number(through)
    reference = day_number(as_of or through)
    histories: list[tuple[IntArray, FloatArray]] = []
    frames = universe_frames(bundle, names)
    for symbol in names:
        frame = frames[symbol]
        days = np.asarray(frame.index.values).astype("datetime64[D]").astype(np.int64)
        stop = int(np.searchsorted(days, last, side="right"))
        raw = frame[["open", "high", "low", "close", "adj_close", "volume"]].to_numpy(
            dtype=np.float64)
        factor = raw[:, 4] / raw[:, 3]
        at = int(np.searchsorted(days, reference, side="right")) - 1
        if at >= 0:
            factor = factor / factor[at]
        values = np.empty((stop, 5))
        values[:, :4] = raw[:stop, :4] * factor[:stop, None]
        values[:, 4] = raw[:stop, 5] / factor[:stop]
        histories.append((days[:stop], values))
    return UniverseBars.from_arrays(list(names), histories)
