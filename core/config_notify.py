"""Settings for notifications through apprise (`[notify]`). Part of
`core.config.Settings`; kept apart only for size."""

from __future__ import annotations

from core.config_types import Section


class NotifySettings(Section):
    pass
