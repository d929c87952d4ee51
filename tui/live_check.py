"""The one question before real money: a profile that trades a LIVE account starts only
after the trader types LIVE at the terminal (or passes --live, for a daemon or a
script). Asked before anything connects, so no strategy can trade while it waits."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from tui.cli_options import fail

if TYPE_CHECKING:
    from core.config import Settings

LiveOption = Annotated[
    bool,
    typer.Option("--live", help="Confirm trading a LIVE account (real money) without "
                 "being asked."),
]
ANSWER = "LIVE"


def trades_live(settings: Settings) -> bool:
    return settings.trading.broker == "alpaca" and settings.alpaca.live


def confirm_live(settings: Settings, *, confirmed: bool) -> None:
    """Return when the profile is paper, or live and confirmed; end the command
    otherwise."""
    if not trades_live(settings) or confirmed:
        return
    where = settings.alpaca.live_url
    if not _interactive():
        fail(f"this profile trades a LIVE Alpaca account ({where}) with real money: "
             "start it with --live to confirm, or set live = false under [alpaca]")
    typer.secho(f"This profile trades a LIVE Alpaca account ({where}): orders are real "
                "and so is the money.", fg=typer.colors.RED, bold=True, err=True)
    answer = typer.prompt(f"Type {ANSWER} to start trading it", default="",
                          show_default=False, err=True)
    if answer.strip() != ANSWER:
        fail("not started: live trading was not confirmed", 1)


def _interactive() -> bool:
    return sys.stdin.isatty()
