"""Shared by the benchmarks: the synthetic symbol universe they load, and how much of
the machine the hypervisor took while they ran, and their isolated environment."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

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


class StealMeter:
    """The share of CPU time the hypervisor gave to other guests while a benchmark ran
    (`steal` in /proc/stat, Linux only). On a shared virtual machine it explains a slow
    run: a figure measured with 20% steal is not comparable with one measured with none."""

    def __init__(self) -> None:
        self._start = self._read()

    @staticmethod
    def _read() -> tuple[int, int] | None:
        try:
            with open("/proc/stat") as stat:
                fields = [int(x) for x in stat.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        if len(fields) < 8:
            return None
        return fields[7], sum(fields[:8])  # steal, total (user..steal)

    def share(self) -> float | None:
        end = self._read()
        if self._start is None or end is None or end[1] <= self._start[1]:
            return None
        return round((end[0] - self._start[0]) / (end[1] - self._start[1]), 3)


class HostMeter:
    """What else the machine did while a benchmark ran: the hypervisor's steal, and the
    1-minute load average before and after (other processes compete for the cores and
    the disk without showing as steal)."""

    def __init__(self) -> None:
        self._steal = StealMeter()
        self._load_before = os.getloadavg()[0]

    def report(self, result: dict[str, Any]) -> None:
        result["host_cpu_steal_share"] = self._steal.share()
        result["host_load_average_1m"] = {"before": round(self._load_before, 2),
                                          "after": round(os.getloadavg()[0], 2),
                                          "cpus": os.cpu_count()}


def cpu_seconds(pid: int | str = "self") -> float | None:
    """User + system CPU seconds a process has used so far, all its threads (utime and
    stime of /proc/<pid>/stat, Linux only); None when it cannot be read (gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            data = stat.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()  # from field 3 (state) on
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int | str = "self") -> float | None:
    """Resident set size now (VmRSS of /proc/<pid>/status), in MB."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def emit(result: dict[str, Any]) -> None:
    """The benchmark's one JSON object, on stdout."""
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


def isolate(home: Path) -> None:
    """Keep the user's config, data and logs out of it."""
    for name in list(os.environ):
        if name.startswith("TAPEDECK_"):
            del os.environ[name]
    os.environ["TAPEDECK_CONFIG"] = str(home / "config.toml")
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        os.environ[var] = str(home / var.lower())


def filesystem_of(path: Path) -> str:
    """The mount's filesystem type: an fsync on tmpfs costs nothing, on ext4 it does."""
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) >= 3 and str(path).startswith(fields[1]) and (
                        len(fields[1]) > len(best)):
                    best, kind = fields[1], fields[2]
    except OSError:
        pass
    return kind
