"""Settings for the real markets: Yahoo Finance (`[yahoo]`) and Alpaca (`[alpaca]`).
Part of `core.config.Settings`; kept apart only for size.

Alpaca's keys come from `APCA_API_KEY_ID` and `APCA_API_SECRET_KEY` (Alpaca's own
names, which its other tools read too) or from this file; the environment wins. They
are held as `SecretStr`, so a repr, a log line or `config show` never prints them.
Paper and live are both spelled out here; live trading needs `live = true`, and the
workstation asks once more before it starts on a live account.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from core.config_types import Section

KEY_ID_ENV = "APCA_API_KEY_ID"
SECRET_KEY_ENV = "APCA_API_SECRET_KEY"


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an http(s) URL such as https://paper-api.alpaca.markets")
    return value.rstrip("/")


def _ws_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError("expected a websocket URL such as wss://stream.data.alpaca.markets")
    return value.rstrip("/")


class YahooSettings(Section):
    stream: bool = Field(
        default=True,
        description="Live prices from Yahoo's websocket; false polls only.")
    poll_interval_s: float = Field(
        default=15.0, ge=2, le=3600,
        description="Seconds between polls when the websocket is off or has failed.")
    request_timeout_s: float = Field(
        default=15.0, gt=0, le=300, description="Longest wait for one Yahoo request.")
    rate_limit_backoff_s: float = Field(
        default=30.0, gt=0, le=3600,
        description="First wait after Yahoo rate-limits us (doubling, with jitter).")
    rate_limit_backoff_max_s: float = Field(
        default=900.0, gt=0, le=86400, description="Longest wait after a rate limit.")


class AlpacaSettings(Section):
    key_id: SecretStr = Field(
        default=SecretStr(""),
        description=f"API key id; {KEY_ID_ENV} in the environment wins.")
    secret_key: SecretStr = Field(
        default=SecretStr(""),
        description=f"API secret key; {SECRET_KEY_ENV} in the environment wins.")
    live: bool = Field(
        default=False,
        description="Trade the LIVE account at live_url (real money); false trades paper.")
    paper_url: str = Field(
        default="https://paper-api.alpaca.markets", description="The paper trading API.")
    live_url: str = Field(
        default="https://api.alpaca.markets", description="The live trading API.")
    data_url: str = Field(
        default="https://data.alpaca.markets", description="The market-data API.")
    data_stream_url: str = Field(
        default="wss://stream.data.alpaca.markets",
        description="The market-data stream (the feed's path is added).")
    data_feed: Literal["iex", "sip"] = Field(
        default="iex", description="iex (free, one exchange) or sip (all exchanges, paid).")
    request_timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="Longest wait for one Alpaca request.")
    requests_per_minute: int = Field(
        default=190, ge=1, le=200,
        description="Client-side cap on trading API requests (Alpaca allows 200).")

    @field_validator("paper_url", "live_url", "data_url")
    @classmethod
    def _http(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("data_stream_url")
    @classmethod
    def _websocket(cls, value: str) -> str:
        return _ws_url(value)

    def trading_url(self) -> str:
        return self.live_url if self.live else self.paper_url

    def trading_stream_url(self) -> str:
        """The trade-updates stream lives on the trading host, at /stream."""
        base = self.trading_url()
        scheme = "wss" if base.startswith("https") else "ws"
        return f"{scheme}://{base.split('://', 1)[1]}/stream"

    def market_stream_url(self) -> str:
        return f"{self.data_stream_url}/v2/{self.data_feed}"


@dataclass(frozen=True, slots=True)
class AlpacaKeys:
    key_id: str
    secret_key: str

    def __repr__(self) -> str:  # never print a secret, even by accident
        return f"AlpacaKeys(key_id={self.key_id[:4]}…, secret_key=***)"


class MissingKeys(ValueError):
    """No Alpaca keys anywhere; the message says where to put them."""


def alpaca_keys(settings: AlpacaSettings, environ: Mapping[str, str] | None = None) -> AlpacaKeys:
    env = os.environ if environ is None else environ
    key_id = env.get(KEY_ID_ENV, "").strip() or settings.key_id.get_secret_value().strip()
    secret = env.get(SECRET_KEY_ENV, "").strip() or settings.secret_key.get_secret_value().strip()
    missing = [name for name, value in ((KEY_ID_ENV, key_id), (SECRET_KEY_ENV, secret))
               if not value]
    if missing:
        raise MissingKeys(
            f"no Alpaca API keys: set {' and '.join(missing)} in the environment, or "
            "key_id and secret_key under [alpaca] in the config file (keys are on "
            "https://app.alpaca.markets, under API keys)")
    return AlpacaKeys(key_id, secret)
