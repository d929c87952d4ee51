"""The watchlists as tabs above the quote board."""

from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import Tab, Tabs


def tab_id(index: int) -> str:
    return f"watchlist-{index}"


class WatchlistTabs(Tabs):
    """Shows the names; the app owns which is active (`Tabs.TabActivated` bubbles up)."""

    def set_watchlists(self, names: Sequence[str], active: str) -> None:
        current = [str(tab.label) for tab in self.query(Tab)]
        if current != list(names):
            self.clear()
            for index, name in enumerate(names):
                self.add_tab(Tab(name, id=tab_id(index)))
        if active in names:
            wanted = tab_id(list(names).index(active))
            if self.active != wanted:
                self.active = wanted
