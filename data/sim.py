"""The `sim` provider: a seeded synthetic market for any well-formed symbol.

It is the replay machinery over synthetic daily bars (`data.synthetic`): correlated
random walks with jumps, streamed through the same intraday paths, clock and calendar,
so everything downstream treats it exactly like the replay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from data.replay import ReplayFeed
from data.synthetic import SyntheticDailyBars

if TYPE_CHECKING:
    from core.config import Settings


class SimFeed(ReplayFeed):
    @classmethod
    def from_settings(cls, settings: Settings) -> SimFeed:
        replay = settings.replay
        feed = cls(
            start=replay.start,
            day_seconds=replay.day_seconds,
            overnight_seconds=replay.overnight_seconds,
            steps_per_day=replay.steps_per_day,
            seed=replay.seed,
            paused=replay.paused,
            synthetic=SyntheticDailyBars(seed=settings.sim.seed),
            name="sim",
        )
        feed.start_at(replay.start_time)
        return feed
