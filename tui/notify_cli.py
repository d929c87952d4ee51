"""`tapedeck notify test`: send one sample message of each kind to the targets the rules
route it to, and say per target whether it arrived.

    tapedeck notify test                  (every kind)
    tapedeck notify test --kind fill --kind kill_switch

Exit status 1 when a send failed (or nothing is configured), 2 for a usage or config
error. Only typer is imported at module level (see tui/cli.py); apprise and the notifier
when the command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tui.cli_options import ConfigOption, ProfileOption, fail

if TYPE_CHECKING:
    from rich.table import Table

    from core.config import Settings
    from core.notify import Delivery, LogLine

notify_app = typer.Typer(help="Notifications: check that they reach you.",
                         no_args_is_help=True)

EXAMPLE = ('[notify.targets]\nphone = "ntfy://ntfy.sh/your-topic"   # or "tgram://BOT_TOKEN/'
           'CHAT_ID", "dbus://" (desktop), ...')


@notify_app.command("test")
def send_test_command(
    ctx: typer.Context,
    kinds: Annotated[list[str] | None, typer.Option(
        "--kind", "-k", help="Only this kind (repeatable): fill, reject, risk_state, "
        "kill_switch, scan_hit, signal, feed_down, feed_up, daemon_start, daemon_stop, "
        "error.", metavar="KIND", show_default=False)] = None,
    config: ConfigOption = None,
    profile: ProfileOption = None,
) -> None:
    """Send one test message of each kind to each target a rule sends it to, and show
    which arrived."""
    from tui.cli import _global, load

    settings = load(*_global(ctx, config, profile))
    from core.config import config_path
    from core.config_notify import KINDS

    chosen = [kind.strip().lower() for kind in kinds or []]
    unknown = [kind for kind in chosen if kind not in KINDS]
    if unknown:
        fail(f"unknown kind {unknown[0]!r}: the kinds are {', '.join(KINDS)}")
    import asyncio

    from core.model import LogLevel

    problems: list[str] = []

    def log_line(level: LogLevel, source: str, message: str) -> None:
        if level >= LogLevel.WARNING:
            problems.append(message)

    deliveries, targets = asyncio.run(_send(settings, chosen, log_line))
    for problem in dict.fromkeys(problems):
        typer.echo(f"tapedeck: notify: {problem}", err=True)
    if not targets:
        where = config or config_path()
        fail(f"no notification targets: add one to {where}, e.g.\n{EXAMPLE}\n"
              "(apprise URLs: https://github.com/caronc/apprise/wiki)", 1)
    if not settings.notify.enabled:
        typer.echo("note: [notify] enabled = false: the engine sends nothing until it is "
                   "true", err=True)
    routed = {delivery.kind for delivery in deliveries}
    quiet = [kind for kind in chosen or KINDS if kind not in routed]
    if not deliveries:
        fail("the rules send none of these kinds to any target (see [[notify.rules]])", 1)
    from tui.cli import _show

    _show(_table(deliveries))
    sent = sum(delivery.ok for delivery in deliveries)
    typer.echo(f"{sent} of {len(deliveries)} test messages sent")
    if quiet:
        typer.echo(f"not sent (no rule routes them): {', '.join(quiet)}")
    if sent < len(deliveries):
        raise typer.Exit(1)


async def _send(settings: Settings, kinds: list[str], log_line: LogLine
                ) -> tuple[list[Delivery], list[str]]:
    from core.notify import Notifier, zone_for

    notifier = Notifier(settings.notify, log_line=log_line,
                        zone=zone_for(settings.ui.timezone))
    targets = notifier.target_names()
    if not targets:
        return [], targets
    try:
        return await notifier.send_test(kinds or None), targets
    finally:
        await notifier.stop(timeout_s=0)


def _table(deliveries: list[Delivery]) -> Table:
    from rich.table import Table

    table = Table(title="tapedeck notify test", title_justify="left")
    table.add_column("target")
    table.add_column("kind")
    table.add_column("result", overflow="fold")
    for delivery in deliveries:
        table.add_row(delivery.target, delivery.kind,
                      "ok" if delivery.ok else f"FAILED: {delivery.reason}")
    return table


