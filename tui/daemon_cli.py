"""`tapedeck daemon`, `attach`, and the commands that act on a running daemon: `status`,
`halt`, `resume`, `flatten`, `cancel-all`.

Only typer at module level (see tui/cli.py); the engine and the socket client are
imported when a command runs.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from tui.cli_options import ConfigOption, ProfileOption, fail
from tui.live_check import LiveOption, confirm_live

if TYPE_CHECKING:
    from core.config import Settings
    from core.control_client import RemoteEngineClient
    from core.health import HealthRecord

T = TypeVar("T")

EXIT_NO_DAEMON = 3  # as `systemctl status` says of a unit that is not running


def _settings(ctx: typer.Context, config: Any, profile: Any) -> Settings:
    from tui.cli import _global, load

    return load(*_global(ctx, config, profile))



def daemon_command(
    ctx: typer.Context,
    config: ConfigOption = None,
    profile: ProfileOption = None,
    print_systemd_unit: Annotated[bool, typer.Option(
        "--print-systemd-unit", help="Print a systemd user unit that runs this daemon, "
        "and exit.")] = False,
    live: LiveOption = False,
) -> None:
    """Run the engine headless: trade on with no screen; attach with `tapedeck attach`.

    SIGTERM or ctrl+c stops it (orders at the broker stay as they are); SIGHUP reloads
    the risk limits and notification rules from the config."""
    from tui.cli import _global, load

    config, profile = _global(ctx, config, profile)
    if print_systemd_unit:
        from core.daemon import systemd_unit

        typer.echo(systemd_unit(_executable(), config=config, profile=profile), nl=False)
        return
    settings = load(config, profile)
    confirm_live(settings, confirmed=live)
    from core.daemon import Daemon, configure_logging

    configure_logging(settings)
    daemon = Daemon(settings, reload=lambda: _reload(config, profile))
    raise typer.Exit(asyncio.run(daemon.run()))


def _reload(config: Any, profile: Any) -> Settings:
    """The config as it is now, for SIGHUP: ConfigError, not an exit, when it is bad."""
    from core.config import Settings, load_settings

    settings = load_settings(config)
    if profile:
        data = settings.model_dump()
        data["store"]["profile"] = profile
        settings = Settings.model_validate(data)
    return settings


def _executable() -> list[str]:
    """The `tapedeck` that is running, as an absolute command for the unit's ExecStart:
    the script beside this interpreter (a venv's), else the one on PATH, else the
    interpreter running the CLI module."""
    import shutil
    from pathlib import Path

    beside = Path(sys.executable).parent / "tapedeck"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("tapedeck")
    if found:
        return [str(Path(found).resolve())]
    return [sys.executable, "-m", "tui.cli"]


# ---------------------------------------------------------------------------- attach


def attach_command(
    ctx: typer.Context,
    config: ConfigOption = None,
    profile: ProfileOption = None,
) -> None:
    """Open the workstation on the daemon's engine. Quitting detaches; the daemon
    trades on."""
    settings = _settings(ctx, config, profile)
    raise typer.Exit(asyncio.run(attach(settings)))


async def attach(settings: Settings) -> int:
    from core.control_client import DaemonUnavailable, RemoteEngineClient
    from core.control_paths import socket_path
    from tui.cli import _log_to_file

    _log_to_file(settings)
    client = RemoteEngineClient(socket_path(settings), reconnect=True)
    try:
        await client.connect()
    except DaemonUnavailable as err:
        fail(f"{err}; start one with `tapedeck daemon`", EXIT_NO_DAEMON)
    try:
        from tui.app import create_app

        app = create_app(settings, client, tune_gc=True)
        await app.run_async()
        return app.return_code or 0
    finally:
        await client.close()


async def daemon_answers(settings: Settings) -> bool:
    """Whether a daemon answers on the profile's socket."""
    from core.control_client import DaemonUnavailable, RemoteEngineClient
    from core.control_paths import socket_path

    client = RemoteEngineClient(socket_path(settings), call_timeout_s=3)
    try:
        await client.connect()
    except DaemonUnavailable:
        return False
    await client.close()
    return True


# ---------------------------------------------------------------------------- operations


def _on_daemon(settings: Settings, action: Callable[[RemoteEngineClient], Awaitable[T]]) -> T:
    """Run `action` on a client of the profile's daemon; a clear exit when none runs or
    it refuses."""
    from core.control_client import DaemonUnavailable, RemoteEngineClient
    from core.control_paths import socket_path
    from core.state import CommandError

    async def run() -> T:
        client = RemoteEngineClient(socket_path(settings), client="cli")
        try:
            await client.connect()
        except DaemonUnavailable as err:
            fail(f"{err} for profile {settings.store.profile}; start one with "
                  "`tapedeck daemon`", EXIT_NO_DAEMON)
        try:
            return await action(client)
        except CommandError as err:
            fail(str(err), 1)
        finally:
            await client.close()

    return asyncio.run(run())


def status_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="The health record as JSON.")
                       ] = False,
    config: ConfigOption = None,
    profile: ProfileOption = None,
) -> None:
    """How the daemon is: feed, broker, orders, trading state. With no daemon running,
    what its last health record said (exit 3)."""
    settings = _settings(ctx, config, profile)
    record, live = asyncio.run(_health(settings))
    if record is None:
        fail(f"no tapedeck daemon is running for profile {settings.store.profile}, and "
              "none has run on it", EXIT_NO_DAEMON)
        return
    if as_json:
        import dataclasses

        typer.echo(json.dumps({**dataclasses.asdict(record), "live": live}, indent=2))
    else:
        typer.echo(describe_health(record, live))
    if not live:
        raise typer.Exit(EXIT_NO_DAEMON)


async def _health(settings: Settings) -> tuple[HealthRecord | None, bool]:
    from core.control_client import DaemonUnavailable, RemoteEngineClient
    from core.control_paths import socket_path
    from core.health import load_health
    from core.state import CommandError
    from core.store import StoreError

    client = RemoteEngineClient(socket_path(settings), client="status", call_timeout_s=5)
    try:
        await client.connect()
        try:
            return await client.status(), True
        finally:
            await client.close()
    except (DaemonUnavailable, CommandError):
        pass
    path = settings.database_path().expanduser()
    if not path.is_file():
        return None, False
    try:
        return await load_health(path), False
    except StoreError as err:
        fail(str(err))


def _duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def describe_health(record: HealthRecord, live: bool, now_ns: int | None = None) -> str:
    now_ns = now_ns or time.time_ns()
    age = record.age_s(now_ns)
    if live:
        head = (f"tapedeck daemon: running, pid {record.pid}, up "
                f"{_duration((now_ns - record.started_ns) / 1e9)}")
    elif record.running:
        head = (f"tapedeck daemon: NOT RUNNING; it did not stop cleanly: pid {record.pid} "
                f"was last heard of {_duration(age)} ago")
    else:
        head = f"tapedeck daemon: not running; pid {record.pid} stopped {_duration(age)} ago"
    lag = "" if record.feed_lag_s is None else f" · lag {_duration(record.feed_lag_s)}"
    quote = ("no quote yet" if record.last_quote_age_s is None
             else f"last quote {_duration(record.last_quote_age_s)} ago")
    state = record.trading_state + (f" ({record.trading_reason})"
                                    if record.trading_reason else "")
    lines = [
        f"{head} (tapedeck {record.version}, profile {record.profile})",
        f"  feed      {record.feed} {record.feed_state}{lag} · {quote} · "
        f"{record.stale_symbols} stale" + (f" · {record.feed_message}"
                                           if record.feed_message else ""),
        f"  broker    {record.broker} {record.broker_connection}",
        f"  trading   {state}",
        f"  book      {record.open_orders} open orders · {record.positions} positions · "
        f"equity {_money(record.equity)} · day P&L {_money(record.day_pnl, signed=True)}",
    ]
    if live:
        lines.append(f"  clients   {record.clients} attached · socket {record.socket}")
    else:
        lines.append(f"  as of     its last health record, {_duration(age)} ago")
    return "\n".join(lines)


def _money(text: str, *, signed: bool = False) -> str:
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        return text
    return f"{value:+,.2f}" if signed else f"{value:,.2f}"


def halt_command(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the log and the audit "
                                        "trail.")] = "halted from the command line",
    config: ConfigOption = None,
    profile: ProfileOption = None,
) -> None:
    """Halt trading: the daemon refuses new orders until `tapedeck resume`."""
    from core.model import TradingState

    settings = _settings(ctx, config, profile)
    _on_daemon(settings, lambda c: c.set_trading_state(TradingState.HALTED, reason))
    typer.echo("trading halted: new orders are refused (working orders stay; "
               "`tapedeck cancel-all` cancels them, `tapedeck resume` trades again)")


def resume_command(
    ctx: typer.Context,
    config: ConfigOption = None,
    profile: ProfileOption = None,
) -> None:
    """Resume trading after a halt."""
    from core.model import TradingState

    settings = _settings(ctx, config, profile)
    _on_daemon(settings, lambda c: c.set_trading_state(TradingState.ACTIVE,
                                                       "resumed from the command line"))
    typer.echo("trading active")


def flatten_command(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")
                   ] = False,
    config: ConfigOption = None,
    profile: ProfileOption = None,
) -> None:
    """Cancel every open order and close every position at the market."""
    settings = _settings(ctx, config, profile)
    if not yes:
        if not sys.stdin.isatty():
            fail("flatten sends market orders: confirm with --yes when not at a terminal")
        typer.confirm(f"Cancel every open order and close every position of profile "
                      f"{settings.store.profile} at the market?", abort=True)
    report = _on_daemon(settings, lambda c: c.flatten())
    typer.echo(f"{report.canceled} orders canceled, {len(report.flattening)} positions "
               "closing" + (": " + ", ".join(report.flattening) if report.flattening else ""))
    for problem in report.problems:
        typer.echo(f"tapedeck: could not close {problem}", err=True)
    if report.problems:
        raise typer.Exit(1)


def cancel_all_command(
    ctx: typer.Context,
    config: ConfigOption = None,
    profile: ProfileOption = None,
) -> None:
    """Cancel every open order."""
    settings = _settings(ctx, config, profile)
    count = _on_daemon(settings, lambda c: c.cancel_all_orders())
    typer.echo(f"{count} orders canceled" if count != 1 else "1 order canceled")
