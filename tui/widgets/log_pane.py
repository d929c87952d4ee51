"""The log pane: what the engine and the feed want the trader to read."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import tzinfo

from rich.text import Text
from textual.widgets import RichLog

from core.model import LogEvent, LogLevel
from tui import format as fmt

LEVEL_VARIABLES = {
    LogLevel.DEBUG: "stale",
    LogLevel.INFO: "secondary",
    LogLevel.WARNING: "warn",
    LogLevel.ERROR: "down",
}


class LogPane(RichLog):
    def __init__(self, zone: tzinfo, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=1000, wrap=True, markup=False, auto_scroll=True)
        self.zone = zone

    def add_events(self, events: Iterable[LogEvent]) -> None:
        variables = self.app.theme_variables
        for event in events:
            moment = fmt.clock_time(event.ts_ns, self.zone)
            line = Text(no_wrap=False)
            line.append(f"{moment:%H:%M:%S} ", style=variables.get("stale", ""))
            colour = variables.get(LEVEL_VARIABLES.get(event.level, "secondary"), "")
            line.append(f"{event.level.name[:4]:<4} ", style=f"bold {colour}")
            line.append(f"{event.source}: ", style=variables.get("accent", ""))
            line.append(event.message)
            self.write(line)
