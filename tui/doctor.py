"""`tapedeck doctor`: is everything a session needs in order, and if not, what to do.

Checks, in the order a session needs them: the config, the database, the data
provider (reachable, and knows a symbol of the watchlists) and the broker (for Alpaca:
keys present, accepted, the account active). Each failure says what is wrong and how
to fix it; the exit code is 1 when anything failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tui.cli_options import ConfigOption, ProfileOption

if TYPE_CHECKING:
    from core.config import Settings

PROVIDER_TIMEOUT_S = 20.0
HISTORY_DAYS = 10


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def doctor_command(ctx: typer.Context, config: ConfigOption = None,
                   profile: ProfileOption = None) -> None:
    """Check the config, the database, the data provider and the broker's keys, and say
    how to fix what is wrong."""
    from tui.cli import _global

    config, profile = _global(ctx, config, profile)
    # What the providers log while being checked is summed up in the check's line.
    logging.getLogger().addHandler(logging.NullHandler())
    checks = asyncio.run(run_checks(config, profile))
    width = max(len(check.name) for check in checks)
    for check in checks:
        mark = typer.style("✓", fg=typer.colors.GREEN) if check.ok else typer.style(
            "✗", fg=typer.colors.RED, bold=True)
        typer.echo(f"{mark} {check.name:<{width}}  {check.detail}")
        if check.fix:
            typer.echo(f"  {'':<{width}}  fix: {check.fix}")
    failed = sum(not check.ok for check in checks)
    typer.echo("all good" if not failed else f"{failed} problem{'s' * (failed > 1)} found")
    raise typer.Exit(1 if failed else 0)


async def run_checks(config: Path | None, profile: str | None) -> list[Check]:
    from core.config import CONFIG_ENV, ConfigError, config_path, load_settings

    path = config or config_path()
    try:
        settings = load_settings(config)
        if profile:
            settings = settings.model_copy(update={"store": settings.store.model_copy(
                update={"profile": profile})})
    except ConfigError as err:
        return [Check("config", False, f"{path}: {err.problems[0]}"
                      + (f" (and {len(err.problems) - 1} more)" if len(err.problems) > 1
                         else ""),
                      f"edit {path} (`tapedeck config check` lists every problem; "
                      f"{CONFIG_ENV} chooses another file)")]
    shown = str(path) if path.exists() else f"{path} (none: defaults)"
    checks = [Check("config", True, shown)]
    checks.append(await _database(settings.database_path()))
    checks.append(await _provider(settings))
    checks.append(await _broker(settings))
    return checks


async def _database(path: Path) -> Check:
    from core.store import Store, StoreCorruptError, StoreError, StoreSchemaTooNewError

    if not await asyncio.to_thread(path.exists):
        return Check("database", True, f"{path} (none yet: made on the first start)")
    try:
        store = await Store.open(path, read_only=True)
    except StoreCorruptError as err:
        return Check("database", False, str(err),
                     f"move it aside (mv '{path}' '{path}.damaged') and start again: a new "
                     "one is made, and a real broker's orders are reconciled into it")
    except StoreSchemaTooNewError as err:
        return Check("database", False, str(err), "upgrade tapedeck (pip install -U tapedeck)")
    except StoreError as err:
        return Check("database", False, str(err),
                     "check the file's permissions and the disk's free space")
    try:
        verdict = await store.integrity_check()
        version = store.schema_version
    finally:
        await store.close()
    if verdict != "ok":
        return Check("database", False, f"{path}: integrity check: {verdict}",
                     f"move it aside (mv '{path}' '{path}.damaged') and start again")
    size = (await asyncio.to_thread(path.stat)).st_size / 1e6
    return Check("database", True, f"{path} (schema v{version}, {size:.1f} MB)")


async def _provider(settings: Settings) -> Check:
    from core.feeds import FeedError, load_feed

    provider = settings.feed.provider
    name = f"data ({provider})"
    try:
        feed = load_feed(provider, settings)
    except FeedError as err:
        return Check(name, False, str(err), _provider_fix(provider, str(err)))
    symbol = next((symbols[0] for symbols in settings.watchlists.values() if symbols), "AAPL")
    try:
        known = await asyncio.wait_for(feed.validate([symbol]), PROVIDER_TIMEOUT_S)
        # A provider may accept a symbol it could not check: history is the proof that
        # it answers.
        end = datetime.fromtimestamp(feed.clock.now_ns() / 1e9, UTC)
        frame = await asyncio.wait_for(
            feed.history([symbol], end - timedelta(days=HISTORY_DAYS), end, "1d"),
            PROVIDER_TIMEOUT_S)
        bars = len(frame)
    except TimeoutError:
        return Check(name, False, f"no answer in {PROVIDER_TIMEOUT_S:g} s",
                     _provider_fix(provider, "timeout"))
    except FeedError as err:
        return Check(name, False, str(err), _provider_fix(provider, str(err)))
    except Exception as err:  # whatever the provider raised is what the trader must read
        return Check(name, False, f"{type(err).__name__}: {err}", _provider_fix(provider, str(err)))
    finally:
        with contextlib.suppress(Exception):  # closing a feed that failed: best effort
            await feed.close()
    if known.get(symbol) is None:
        return Check(name, False, f"reachable, but it does not know {symbol}",
                     f"check the symbols of your watchlists for the {provider} provider")
    delayed = " (delayed data)" if getattr(feed, "delayed", False) else ""
    return Check(name, True, f"reachable: {bars} daily bars of {symbol} in the last "
                 f"{HISTORY_DAYS} days{delayed}")


def _provider_fix(provider: str, problem: str) -> str:
    text = problem.lower()
    if "key" in text and provider == "alpaca":
        return ("set APCA_API_KEY_ID and APCA_API_SECRET_KEY, or key_id and secret_key "
                "under [alpaca]")
    if "rate" in text or "429" in text:
        return "Yahoo is rate-limiting this address: wait a few minutes, then try again"
    if "unknown data provider" in text:
        return "set [feed] provider to replay, sim, yahoo or alpaca"
    return "check the network, and the provider's URL in the config"


async def _broker(settings: Settings) -> Check:
    from core.brokers.base import available_brokers

    broker = settings.trading.broker
    if broker == "paper":
        return Check("broker (paper)", True, "the built-in paper venue: nothing to reach")
    if broker != "alpaca":
        known = ", ".join(sorted(available_brokers()))
        return Check(f"broker ({broker})", broker in available_brokers(),
                     "installed" if broker in available_brokers() else "not installed",
                     "" if broker in available_brokers() else f"set [trading] broker to one "
                     f"of: {known}")
    return await _alpaca(settings)


async def _alpaca(settings: Settings) -> Check:
    from core.brokers.alpaca_rest import AlpacaError, AlpacaRest, AlpacaUnauthorized
    from core.config_venues import MissingKeys, alpaca_keys

    alpaca = settings.alpaca
    mode = "LIVE" if alpaca.live else "paper"
    name = f"broker (alpaca {mode})"
    try:
        keys = alpaca_keys(alpaca)
    except MissingKeys as err:
        return Check(name, False, "no API keys", str(err).split(": ", 1)[1])
    rest = AlpacaRest(alpaca, keys)
    try:
        account = await rest.call(lambda client: client.get_account())
    except AlpacaUnauthorized:
        return Check(name, False, f"{alpaca.trading_url()} refused the keys",
                     f"use {mode} keys for {mode} trading (Alpaca's paper and live keys "
                     "differ), from https://app.alpaca.markets")
    except AlpacaError as err:
        return Check(name, False, f"{alpaca.trading_url()}: {err}",
                     "check the network, and paper_url / live_url under [alpaca]")
    status = str(getattr(account.status, "value", account.status))
    blocked = bool(getattr(account, "trading_blocked", False))
    detail = (f"account {account.account_number} {status}, buying power "
              f"{account.buying_power} {account.currency or ''}".rstrip())
    if status != "ACTIVE" or blocked:
        return Check(name, False, detail + (" (trading blocked)" if blocked else ""),
                     "see the account's page on https://app.alpaca.markets")
    return Check(name, True, detail)
