"""The options every command takes, and how a command fails, in one place for tui/cli.py
and the command modules it registers (which cannot import it back without a cycle)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

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


def fail(message: str, code: int = 2) -> NoReturn:
    """End a command with one line on stderr, never a traceback."""
    typer.echo(f"tapedeck: {message}", err=True)
    raise typer.Exit(code)
