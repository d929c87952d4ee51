"""The options every command takes, in one place for tui/cli.py and the command
modules it registers (which cannot import it back without a cycle)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file (default: TAPEDECK_CONFIG or the "
                 "platform config dir).", show_default=False),
]
ProfileOption = Annotated[
    str | None,
    typer.Option("--profile", "-p", help="Profile: one database per profile.",
                 show_default=False),
]
