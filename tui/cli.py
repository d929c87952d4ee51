"""The `tapedeck` command.

Heavy modules (textual, pandas, the engine) are imported inside the commands that need
them, so `tapedeck --help` and `tapedeck config path` answer at once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from core import __version__
from core.native import stale as stale_extensions
from tui.backtest_cli import backtest_command
from tui.cli_options import ConfigOption, ProfileOption, fail
from tui.daemon_cli import (
    attach_command,
    cancel_all_command,
    daemon_command,
    flatten_command,
    halt_command,
    resume_command,
    status_command,
)
from tui.doctor import doctor_command
from tui.live_check import LiveOption, confirm_live
from tui.notify_cli import notify_app
from tui.scan_cli import scan_command

if TYPE_CHECKING:
    from datetime import tzinfo

    from rich.table import Table

    from core.config import Settings
    from tui.book_report import Book

# How long the workstation waits for the feed's first prices before drawing the screen
# anyway (a network feed may take longer; the screen then fills in as prices arrive).
FIRST_PRICES_WAIT_S = 1.0

app = typer.Typer(
    name="tapedeck",
    help="A keyboard-driven trading workstation for the terminal.",
    no_args_is_help=False,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Show, create and check the configuration file.",
                         no_args_is_help=True)
app.add_typer(config_app, name="config")

DEFAULT_LIMIT = 50
LimitOption = Annotated[
    int | None,
    typer.Option("--limit", "-n", min=0, help=f"Show the newest N (default {DEFAULT_LIMIT}; "
                 "0 for all).", show_default=False),
]


def load(config: Path | None = None, profile: str | None = None,
         overrides: dict[str, dict[str, object]] | None = None) -> Settings:
    from core.config import ConfigError, Settings, load_settings

    try:
        settings = load_settings(config)
        changes: dict[str, dict[str, object]] = dict(overrides or {})
        if profile:
            changes.setdefault("store", {})["profile"] = profile
        if changes:
            data = settings.model_dump()
            for section, values in changes.items():
                data[section].update(values)
            settings = Settings.model_validate(data)
    except ConfigError as error:
        fail(str(error))
    except ValueError as error:  # an override from the command line
        fail(f"invalid option: {error}")
    return settings


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"tapedeck {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=version_callback,
                                          is_eager=True, help="Print the version.")] = False,
    config: ConfigOption = None,
    profile: ProfileOption = None,
    live: LiveOption = False,
) -> None:
    """With no command: start the workstation (same as `tapedeck ui`)."""
    ctx.obj = {"config": config, "profile": profile, "live": live}
    if ctx.invoked_subcommand is None:
        ui(ctx)


def _global(ctx: typer.Context, config: Path | None, profile: str | None) -> tuple[
        Path | None, str | None]:
    parent = ctx.obj or {}
    return config or parent.get("config"), profile or parent.get("profile")


@app.command()
def ui(
    ctx: typer.Context,
    config: ConfigOption = None,
    profile: ProfileOption = None,
    feed: Annotated[str | None, typer.Option("--feed", help="Data provider, e.g. replay or "
                                             "sim.", show_default=False)] = None,
    replay_from: Annotated[str | None, typer.Option(
        "--replay-from", help="Start the replay at this date (YYYY-MM-DD) instead of "
        "resuming.", show_default=False)] = None,
    live: LiveOption = False,
) -> None:
    """Start the workstation."""
    config, profile = _global(ctx, config, profile)
    overrides: dict[str, dict[str, object]] = {}
    if feed:
        overrides["feed"] = {"provider": feed}
    if replay_from:
        overrides["replay"] = {"start": replay_from, "resume": False}
    settings = load(config, profile, overrides)
    confirm_live(settings, confirmed=live or bool((ctx.obj or {}).get("live")))
    import asyncio

    code = asyncio.run(_run_workstation(settings))
    raise typer.Exit(code)


async def _run_workstation(settings: Settings) -> int:
    from core.brokers.base import BrokerError
    from core.client import InProcessEngineClient
    from core.engine import Engine
    from core.feeds import FeedError
    from core.store import StoreError, StoreLockedError

    log_file = _log_to_file(settings)
    try:
        engine = await Engine.open(settings)
    except StoreLockedError as error:
        return await _offer_attach(settings, error)
    except (StoreError, FeedError, BrokerError) as error:
        fail(str(error))
    engine.log_file = log_file
    try:
        try:
            await engine.start()
        except BrokerError as error:
            fail(f"not started: {error}")
        await engine.wait_until_live(FIRST_PRICES_WAIT_S)
        from tui.app import create_app

        tui = create_app(settings, InProcessEngineClient(engine), tune_gc=True)
        await tui.run_async()
        return tui.return_code or 0
    finally:
        await engine.stop()


async def _offer_attach(settings: Settings, error: Exception) -> int:
    """The profile's database is locked: by a daemon, offer to attach to it; by
    another workstation, say so."""
    from tui.daemon_cli import attach, daemon_answers

    if not await daemon_answers(settings):
        fail(str(error))
    pid = getattr(error, "pid", None)
    question = (f"A tapedeck daemon{f' (pid {pid})' if pid else ''} is running on profile "
                f"{settings.store.profile}. Attach to it?")
    if not sys.stdin.isatty():
        fail(f"{question.split('.')[0]}: run `tapedeck attach` to open the workstation on it")
    if not typer.confirm(question, default=True):
        return 1
    return await attach(settings)


def _log_to_file(settings: Settings) -> Path | None:
    """While the screen is Textual's, log records go to a file (never to stderr, which
    would tear the screen); the log pane shows the ones a trader should read."""
    import logging
    from logging.handlers import RotatingFileHandler

    import platformdirs

    path = Path(platformdirs.user_log_dir("tapedeck")) / f"{settings.store.profile}.log"
    root = logging.getLogger()
    root.setLevel(settings.logging.level.upper())
    written: Path | None = path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = RotatingFileHandler(path, maxBytes=5_000_000, backupCount=3)
    except OSError:  # an unwritable log dir must not stop the workstation
        handler, written = logging.NullHandler(), None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    return written


@app.command()
def quote(
    ctx: typer.Context,
    symbols: Annotated[list[str], typer.Argument(help="Symbols, e.g. AAPL MSFT.")],
    config: ConfigOption = None,
    profile: ProfileOption = None,
) -> None:
    """Print quotes from the configured feed, without the UI."""
    config, profile = _global(ctx, config, profile)
    settings = load(config, profile)
    from core.feeds import FeedError
    from core.quotes import QuoteRequestError, fetch_quotes
    from core.store import StoreError

    try:
        import asyncio

        rows, clock_ns, unknown = asyncio.run(fetch_quotes(settings, symbols))
    except (FeedError, StoreError, QuoteRequestError) as error:
        fail(str(error))
    from rich.console import Console
    from rich.table import Table

    from tui import format as fmt

    zone, _ = fmt.display_zone(settings.ui.timezone)
    table = Table(title=f"{settings.feed.provider} · "
                  f"{fmt.clock_time(clock_ns, zone):%Y-%m-%d %H:%M:%S %Z}")
    for title in ("Symbol", "Last", "Chg", "%Chg", "Bid", "Ask", "Volume", "Day range"):
        table.add_column(title, justify="left" if title == "Symbol" else "right")
    for row in rows:
        colour = "green" if row.change > 0 else "red" if row.change < 0 else ""
        table.add_row(
            row.symbol + ("*" if row.source == "sim" else ""),
            fmt.price(row.last),
            f"[{colour}]{fmt.signed(row.change)}[/]" if colour else fmt.signed(row.change),
            f"[{colour}]{fmt.percent(row.pct_change)}[/]" if colour
            else fmt.percent(row.pct_change),
            fmt.price(row.bid), fmt.price(row.ask), fmt.volume(row.volume),
            fmt.day_range(row.day_low, row.day_high),
        )
    console = Console()
    console.print(table)
    if any(row.source == "sim" for row in rows):
        console.print("* synthetic prices: not in the bundled replay data")
    for message in unknown:
        typer.echo(f"tapedeck: {message}", err=True)
    if unknown:
        raise typer.Exit(1)


@app.command()
def orders(
    ctx: typer.Context,
    open_only: Annotated[bool, typer.Option("--open", help="Only orders still working.")
                         ] = False,
    limit: LimitOption = None,
    config: ConfigOption = None,
    profile: ProfileOption = None,
) -> None:
    """List the orders, newest first.

    Reads the profile's database read-only: safe while the workstation runs."""
    settings = load(*_global(ctx, config, profile))
    from tui.book_report import orders_table

    zone, label = _zone(settings)
    _show(orders_table(_read_book(settings), zone, label, open_only=open_only,
                       limit=DEFAULT_LIMIT if limit is None else limit))


@app.command()
def fills(
    ctx: typer.Context,
    limit: Annotated[int | None, typer.Option(
        "--limit", "-n", min=0, help=f"Only the newest N (default: {DEFAULT_LIMIT} in the "
        "table, all in CSV; 0 for all).", show_default=False)] = None,
    as_csv: Annotated[bool, typer.Option(
        "--csv", help="CSV on stdout, oldest first, with exact values and UTC ISO times.")
    ] = False,
    config: ConfigOption = None,
    profile: ProfileOption = None,
) -> None:
    """List the fills, newest first, or export them as CSV.

    Reads the profile's database read-only: safe while the workstation runs."""
    settings = load(*_global(ctx, config, profile))
    book = _read_book(settings)
    if as_csv:
        from tui.book_report import write_fills_csv

        # An export wants everything unless told otherwise: a silent cut at 50 rows
        # would go unnoticed in a spreadsheet.
        write_fills_csv(book, sys.stdout, limit=0 if limit is None else limit)
        return
    from tui.book_report import fills_table

    zone, label = _zone(settings)
    _show(fills_table(book, zone, label, limit=DEFAULT_LIMIT if limit is None else limit))


@app.command()
def positions(
    ctx: typer.Context,
    config: ConfigOption = None,
    profile: ProfileOption = None,
) -> None:
    """List the open positions and their P&L.

    Rebuilt from the fills, valued at the last marks the engine saved. Reads the
    profile's database read-only: safe while the workstation runs."""
    settings = load(*_global(ctx, config, profile))
    from tui.book_report import positions_table

    zone, label = _zone(settings)
    _show(positions_table(_read_book(settings), zone, label))


def _read_book(settings: Settings) -> Book:
    import asyncio

    from core.store import StoreError
    from tui.book_report import read_book

    path = settings.database_path().expanduser()
    if not path.is_file():
        # Not an empty report: a mistyped --profile lands here too, and a script should
        # be able to tell (exit 1).
        fail(f"no database yet at {path}: nothing has been traded", 1)
    try:
        return asyncio.run(read_book(path))
    except StoreError as error:
        fail(str(error))


def _zone(settings: Settings) -> tuple[tzinfo, str]:
    from tui import format as fmt

    return fmt.display_zone(settings.ui.timezone)


def _show(report: Table | str) -> None:
    if isinstance(report, str):
        typer.echo(report)
        return
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        # Piped or redirected: there is no screen to fit, so print at the table's natural
        # width rather than folding ids and times into 80 columns.
        natural = console.measure(report, options=console.options.update_width(1_000))
        console = Console(width=max(console.width, natural.maximum))
    console.print(report)


@config_app.command("path")
def config_path_command() -> None:
    """Print where the config file is read from."""
    from core.config import config_path

    typer.echo(str(config_path()))


@config_app.command("show")
def config_show(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Print the effective settings (file + environment + defaults), secrets redacted."""
    import json

    from core.config_text import redacted

    settings = load(config or (ctx.parent.obj or {}).get("config") if ctx.parent else config)
    typer.echo(json.dumps(redacted(settings), indent=2, default=str))


@config_app.command("init")
def config_init(
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented config file with every key and its default."""
    from core.config import config_path
    from core.config_text import default_config_text

    path = config_path()
    if path.exists() and not force:
        fail(f"{path} exists already (use --force to overwrite)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(default_config_text(), encoding="utf-8")
    except OSError as error:
        fail(f"cannot write {path}: {error.strerror}")
    typer.echo(f"wrote {path}")


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Validate the config file and the environment overrides."""
    from core.config import config_path

    load(config)
    typer.echo(f"{config or config_path()}: ok")


app.command("backtest")(backtest_command)
app.command("scan")(scan_command)
app.add_typer(notify_app, name="notify")
app.command("daemon")(daemon_command)
app.command("attach")(attach_command)
app.command("status")(status_command)
app.command("halt")(halt_command)
app.command("resume")(resume_command)
app.command("flatten")(flatten_command)
app.command("cancel-all")(cancel_all_command)
app.command("doctor")(doctor_command)


def main() -> None:
    changed = stale_extensions()
    if changed:
        print(f"warning: {', '.join(path.name for path in changed)} changed after it was "
              "compiled and runs as it was then: run `make native`", file=sys.stderr)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
