"""A disk cache of the bundle's cleaned daily bars, so that loading the whole universe
does not decompress, parse and clean 443 CSVs every time.

One `.npz` file (numpy's zip of `.npy` arrays, stored uncompressed: it reads in tens of
milliseconds, where compressing would cost seconds to write and a sixth of one to read)
per bundle location, under `platformdirs.user_cache_dir("tapedeck")`. It holds every
symbol's rows end to end, the offsets where each symbol's rows start, each symbol's
`LoadReport` counts and the lines its cleaning logged, and the key of what it was built
from (`data.bundle` makes that key from the bundle's directory and the cleaning's
version): a file with another key, or that cannot be read or fails a consistency check,
is ignored and rebuilt. The file holds plain numbers and strings and is loaded with
`allow_pickle=False`, so it cannot run code. It is written to a temporary file and
renamed over the old one, so a reader never sees half a file. Nothing here raises:
failures are logged at debug level and leave the caller on the slow path.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import platformdirs

logger = logging.getLogger(__name__)

LAYOUT = 1  # bump when the arrays below, or what they mean, change
ABANDONED_AFTER_S = 600.0  # a temporary file this old is no longer being written
ARRAYS = (
    "key", "symbols", "offsets", "dates", "values",
    "counts", "short_history", "note_offsets", "note_levels", "note_messages",
)


@dataclass(frozen=True)
class CachedBars:
    """The cleaned bars of a list of symbols, end to end. Symbol `i` owns rows
    `offsets[i]:offsets[i + 1]` of `dates` and of `values` (one row per column of the
    bars, one column per bar: each bar column is contiguous), row `i` of `counts` (the
    report's counters) and of `short_history`, and notes `note_offsets[i]:note_offsets[i + 1]`
    (the level and text of each line its cleaning logged). `positions` maps each symbol
    to its `i`."""

    symbols: npt.NDArray[np.str_]
    offsets: npt.NDArray[np.int64]
    dates: npt.NDArray[np.datetime64]
    values: npt.NDArray[np.float64]
    counts: npt.NDArray[np.int64]
    short_history: npt.NDArray[np.bool_]
    note_offsets: npt.NDArray[np.int64]
    note_levels: npt.NDArray[np.int64]
    note_messages: npt.NDArray[np.str_]
    positions: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        positions = {str(symbol): i for i, symbol in enumerate(self.symbols)}
        object.__setattr__(self, "positions", positions)

    def frame(self, i: int, columns: pd.Index) -> pd.DataFrame:
        """Symbol `i`'s bars, indexed by "date" (copies, so that the cache's arrays can be
        freed once every symbol is loaded)."""
        start, stop = int(self.offsets[i]), int(self.offsets[i + 1])
        index = pd.DatetimeIndex(self.dates[start:stop].copy(), name="date")
        # A copy of `columns` is 4x faster than an Index made from names.
        return pd.DataFrame(self.values[:, start:stop].T, index=index,
                            columns=columns.copy(), copy=True)

    def notes(self, i: int) -> list[tuple[int, str]]:
        start, stop = int(self.note_offsets[i]), int(self.note_offsets[i + 1])
        return [(int(level), str(message)) for level, message
                in zip(self.note_levels[start:stop], self.note_messages[start:stop], strict=True)]


def cache_key(archive: zipfile.ZipFile, *parts: str) -> str:
    """A digest of `parts` (what the cleaning depends on), the versions of the libraries
    that parse and the members of `archive`: the name, CRC and size of each, which change
    with any member's content, whatever happens to the file's dates."""
    lines = [f"layout {LAYOUT}", f"pandas {pd.__version__}", f"numpy {np.__version__}", *parts,
             *(f"{info.filename} {info.CRC} {info.file_size}" for info in archive.infolist())]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def cache_file(bundle: Path, cache_dir: Path | None = None) -> Path:
    """Where the cache of the bundle at `bundle` lives: one file per bundle location,
    replaced whenever the bundle or the cleaning changes."""
    folder = cache_dir if cache_dir is not None else Path(platformdirs.user_cache_dir("tapedeck"))
    location = hashlib.sha256(os.path.abspath(bundle).encode()).hexdigest()[:16]
    return folder / f"bundle-{location}.npz"


def read(path: Path, key: str, symbols: set[str], columns: int, counters: int
         ) -> CachedBars | None:
    """The cache at `path` if it exists, was built for `key` and is consistent (`symbols`,
    `columns` bar columns, `counters` report counters); None otherwise."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in ARRAYS}
    except FileNotFoundError:
        logger.debug("no bundle cache at %s", path)
        return None
    # Damage shows up as whatever numpy or zipfile meets first (BadZipFile on a bad CRC,
    # ValueError on a bad header, EOFError, KeyError for a missing array, MemoryError for
    # an absurd shape): any of them means "rebuild", never an error for the caller.
    except Exception as error:
        logger.debug("ignoring the unreadable bundle cache %s: %r", path, error)
        return None
    if arrays["key"].shape != () or str(arrays["key"]) != key:
        logger.debug("ignoring the bundle cache %s: built from another bundle or version", path)
        return None
    problem = _inconsistency(arrays, columns, counters)
    if not problem and set(arrays["symbols"].tolist()) != symbols:
        problem = "other symbols than the bundle's"  # the key covers them: only if damaged
    if problem:
        logger.debug("ignoring the inconsistent bundle cache %s: %s", path, problem)
        return None
    logger.debug("read the bundle cache %s", path)
    return CachedBars(**{name: arrays[name] for name in ARRAYS if name != "key"})


def _inconsistency(arrays: dict[str, np.ndarray], columns: int, counters: int) -> str:
    """What is wrong with the arrays read, or "" when they fit together."""
    symbols, offsets, dates, values = (arrays[n] for n in ("symbols", "offsets", "dates", "values"))
    note_offsets, levels, messages = (arrays[n] for n in ("note_offsets", "note_levels",
                                                          "note_messages"))
    kinds = {"symbols": "U", "note_messages": "U", "offsets": "i", "note_offsets": "i",
             "note_levels": "i", "counts": "i", "short_history": "b"}
    wrong = [name for name, kind in kinds.items() if arrays[name].dtype.kind != kind]
    if dates.dtype != np.dtype("datetime64[ns]"):
        wrong.append("dates")
    if values.dtype != np.float64:
        wrong.append("values")
    if wrong:
        return f"unexpected types of {', '.join(wrong)}"
    n = len(symbols)
    shapes = {
        "symbols": (n,), "offsets": (n + 1,), "dates": (len(dates),),
        "values": (columns, len(dates)), "counts": (n, counters), "short_history": (n,),
        "note_offsets": (n + 1,), "note_levels": (len(levels),), "note_messages": (len(levels),),
    }
    wrong = [name for name, shape in shapes.items() if arrays[name].shape != shape]
    if wrong:
        return f"unexpected shapes of {', '.join(wrong)}"
    for name, bounds, total in (("offsets", offsets, len(dates)),
                                ("note_offsets", note_offsets, len(messages))):
        if bounds[0] != 0 or bounds[-1] != total or (np.diff(bounds) < 0).any():
            return f"{name} do not partition the rows"
    if len(np.unique(symbols)) != n:
        return "repeated symbols"
    return ""


def _build(
    symbols: list[str],
    frames: list[pd.DataFrame],
    counts: list[list[int]],
    short_history: list[bool],
    notes: list[list[tuple[int, str]]],
) -> CachedBars:
    """The cache of `symbols`, each with its bars (a DatetimeIndex, float columns), report
    counts, whether its history is short and its logged notes, in the same order."""
    columns = len(frames[0].columns) if frames else 0
    flat_notes = [note for symbol_notes in notes for note in symbol_notes]
    return CachedBars(
        symbols=np.array(symbols, dtype=np.str_),
        offsets=_offsets([len(frame) for frame in frames]),
        dates=np.concatenate([np.empty(0, "datetime64[ns]"),
                              *(np.asarray(frame.index, "datetime64[ns]") for frame in frames)]),
        values=np.concatenate([np.empty((columns, 0)),
                               *(frame.to_numpy(np.float64).T for frame in frames)], axis=1),
        counts=np.array(counts, dtype=np.int64).reshape(len(symbols), -1),
        short_history=np.array(short_history, dtype=np.bool_),
        note_offsets=_offsets([len(symbol_notes) for symbol_notes in notes]),
        note_levels=np.array([level for level, _ in flat_notes], dtype=np.int64),
        note_messages=np.array([message for _, message in flat_notes], dtype=np.str_),
    )


def _offsets(sizes: list[int]) -> npt.NDArray[np.int64]:
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return offsets


def _remove_abandoned(path: Path) -> None:
    """Delete temporary files of `path` that a process killed while writing left behind
    (each as large as the cache); not the ones others may still be writing."""
    for temporary in path.parent.glob(f".{path.stem}-*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - temporary.stat().st_mtime > ABANDONED_AFTER_S:
                temporary.unlink()


def write(
    path: Path,
    key: str,
    symbols: list[str],
    frames: list[pd.DataFrame],
    counts: list[list[int]],
    short_history: list[bool],
    notes: list[list[tuple[int, str]]],
) -> bool:
    """Save the cache for `key` at `path`, atomically: `symbols`, each with its bars (a
    DatetimeIndex, float columns), report counts, whether its history is short and its
    logged notes, in the same order. False (and a debug line) when it cannot: a read-only
    or full disk only costs the next load its speed."""
    if not symbols:
        return False
    temporary: str | None = None
    try:
        bars = _build(symbols, frames, counts, short_history, notes)
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(path)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-",
                                                 suffix=".tmp")
        with os.fdopen(descriptor, "wb") as file:
            np.savez(file, key=np.array(key, dtype=np.str_),
                     **{name: getattr(bars, name) for name in ARRAYS if name != "key"})
        os.replace(temporary, path)
    except Exception as error:  # OSError mostly; nothing may escape to the caller
        logger.debug("cannot write the bundle cache %s: %r", path, error)
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        return False
    logger.debug("wrote the bundle cache %s", path)
    return True
