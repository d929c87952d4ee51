"""One line across the top: feed, market clock, session phase, replay speed, staleness."""

from __future__ import annotations

from datetime import tzinfo

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from core.model import FeedState, MarketPhase
from core.state import EngineStatus
from tui import format as fmt

FEED_GLYPHS = {
    FeedState.LIVE: "●",
    FeedState.STARTING: "○",
    FeedState.RECONNECTING: "◌",
    FeedState.STOPPED: "■",
    FeedState.FINISHED: "■",
}


class StatusBar(Widget):
    status: reactive[EngineStatus | None] = reactive(None, layout=False)
    watchlist: reactive[str] = reactive("")

    def __init__(self, zone: tzinfo, zone_label: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.zone = zone
        self.zone_label = zone_label

    def render(self) -> Text:
        status = self.status
        variables = self.app.theme_variables
        text = Text(no_wrap=True, overflow="ellipsis")
        if status is None:
            text.append(" starting…", style=variables.get("secondary", ""))
            return text
        if status.link_down:
            # Attached to a daemon that went away: first, so no width hides it; the rest
            # of the line is as the daemon last said, and may be old.
            text.append(f" ✖ {status.link.upper()[:1]}{status.link[1:]} ",
                        style=f"bold reverse {variables.get('error', 'red')}")
        elif status.link:
            text.append(f" ⇄ {status.link}", style=variables.get("secondary", ""))
        if status.live_account:
            text.append(" ● LIVE ", style=f"bold reverse {variables.get('error', 'red')}")
        feed_colour = {
            FeedState.LIVE: variables.get("up", "green"),
            FeedState.RECONNECTING: variables.get("warn", "yellow"),
        }.get(status.feed_state, variables.get("stale", "grey50"))
        glyph = FEED_GLYPHS.get(status.feed_state, "?")
        text.append(f" {glyph} ", style=feed_colour)
        text.append(status.feed_name.upper(), style="bold")
        state = "DELAYED" if status.delayed and status.feed_state == FeedState.LIVE else (
            status.feed_state.value)
        text.append(f" {state}", style=feed_colour)
        if status.feed_note:
            text.append(f"  ⚠ {status.feed_note}", style=f"bold {variables.get('warn', 'yellow')}")
        if status.market_ns:
            moment = fmt.clock_time(status.market_ns, self.zone)
            text.append(f"  {moment:%a %Y-%m-%d %H:%M:%S} {self.zone_label}")
        phase_colour = variables.get("up", "green") if status.phase == MarketPhase.OPEN else (
            variables.get("warn", "yellow"))
        text.append(f"  {status.phase.value.upper()}", style=f"bold {phase_colour}")
        if status.replay:
            if status.paused:
                text.append("  ⏸ PAUSED", style=f"bold {variables.get('warn', 'yellow')}")
            text.append(f"  ⏵ {status.replay}", style=variables.get("secondary", ""))
        if status.stale_symbols:
            text.append(f"  ⚠ {status.stale_symbols} stale",
                        style=f"bold {variables.get('warn', 'yellow')}")
        if self.watchlist:
            text.append(f"  ☰ {self.watchlist}", style=variables.get("accent", ""))
        return text
