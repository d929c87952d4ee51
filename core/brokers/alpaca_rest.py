"""Alpaca's trading API, as the broker needs it: every request off the engine's loop,
under a request timeout, under Alpaca's rate limit, and sorted by what its failure means.

alpaca-py's `TradingClient` is synchronous (requests) and sends with no timeout at all,
and it retries a 429 by sleeping in the calling thread. So each call runs in a worker
thread, the client's session gets a default timeout, and its own 429 retry is turned
off: a 429 is backed off here, with jitter, where the limiter can see it.

Failures fall in three kinds, and the broker acts on the kind:
- `AlpacaRejected`: Alpaca answered no (4xx other than 404, 408, 422-duplicate, 429);
  the message is Alpaca's own, for the trader.
- `AlpacaDuplicate`: a 422 because the client order id is taken; the order (or one of
  ours with that id) is at Alpaca already.
- `AlpacaInDoubt`: no answer (timeout, dropped connection) or a 5xx. The request may or
  may not have been carried out: whatever it was must be looked up before anything is
  sent again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient

from core.config_venues import AlpacaKeys, AlpacaSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
WINDOW_S = 60.0
MAX_RATE_RETRIES = 5
MAX_RATE_WAIT_S = 60.0  # longest wait a 429's reset time may ask for
_RATE_BACKOFF_S = (1.0, 30.0)


class AlpacaError(Exception):
    """A request Alpaca did not carry out as asked; `str()` is for the trader."""

    def __init__(self, message: str, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class AlpacaRejected(AlpacaError):
    pass


class AlpacaNotFound(AlpacaError):
    pass


class AlpacaDuplicate(AlpacaError):
    pass


class AlpacaInDoubt(AlpacaError):
    pass


class AlpacaUnauthorized(AlpacaRejected):
    pass


class _TimeoutSession(requests.Session):
    """A session whose requests all carry a timeout unless one is given."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def request(self, method: str | bytes, url: str | bytes, *args: Any,
                **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout_s)
        return super().request(method, url, *args, **kwargs)  # type: ignore[arg-type]


class RateLimiter:
    """At most `per_minute` requests in any 60 s (a sliding window), and a pause for
    everyone after a 429."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._sent: deque[float] = deque()
        self._paused_until = 0.0
        self.waits = 0  # how often a request had to wait (health, tests)

    def delay(self) -> float:
        """Seconds to wait before the next request may go (0 when it may go now)."""
        now = self.clock()
        while self._sent and now - self._sent[0] >= WINDOW_S:
            self._sent.popleft()
        wait = max(0.0, self._paused_until - now)
        if len(self._sent) >= self.per_minute:
            wait = max(wait, self._sent[0] + WINDOW_S - now)
        return wait

    async def acquire(self) -> None:
        while (wait := self.delay()) > 0:
            self.waits += 1
            await asyncio.sleep(wait)
        self._sent.append(self.clock())

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self.clock() + seconds)


def classify(error: BaseException) -> AlpacaError:
    """An exception from alpaca-py or requests as one of our kinds."""
    if isinstance(error, AlpacaError):
        return error
    if isinstance(error, APIError):
        status = error.status_code
        code, message = _api_message(error)
        # 403 is also "insufficient buying power" (code 40310000): only a bare
        # "forbidden" is about the keys.
        if status == 401 or (status == 403 and message.strip().lower() in (
                "forbidden", "request is not authorized")):
            return AlpacaUnauthorized(
                f"Alpaca refused the API keys ({message}): check APCA_API_KEY_ID and "
                "APCA_API_SECRET_KEY, and that they are paper keys for paper trading and "
                "live keys for live", status, code)
        if status == 404:
            return AlpacaNotFound(message, status, code)
        if status == 422 and "client_order_id" in message.lower():
            return AlpacaDuplicate(message, status, code)
        if status is None or status >= 500 or status == 408:
            return AlpacaInDoubt(f"Alpaca answered {status}: {message}", status, code)
        return AlpacaRejected(message, status, code)
    if isinstance(error, requests.Timeout):
        return AlpacaInDoubt("no answer from Alpaca in time")
    if isinstance(error, requests.ConnectionError):
        return AlpacaInDoubt(f"cannot reach Alpaca ({_short(error)})")
    if isinstance(error, requests.RequestException):
        return AlpacaInDoubt(f"the request to Alpaca failed ({_short(error)})")
    if isinstance(error, ValueError):
        # alpaca-py parses the answer into its models: an answer it cannot read.
        return AlpacaInDoubt(f"an answer from Alpaca could not be read ({_short(error)})")
    return AlpacaInDoubt(f"{type(error).__name__}: {_short(error)}")


def _api_message(error: APIError) -> tuple[int | None, str]:
    try:
        body = json.loads(str(error))
    except (TypeError, ValueError):
        return None, str(error)[:200] or "no message"
    if not isinstance(body, dict):
        return None, str(body)[:200]
    code = body.get("code")
    return (code if isinstance(code, int) else None), str(body.get("message", body))[:200]


def _short(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:160]


def _retry_after(error: BaseException) -> float | None:
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    for name in ("Retry-After", "X-Ratelimit-Reset"):
        value = headers.get(name)
        if value is None:
            continue
        try:
            number = float(value)
        except ValueError:
            continue
        # X-Ratelimit-Reset is an epoch second; Retry-After a number of seconds.
        seconds = number - time.time() if number > 1e9 else number
        return min(max(seconds, 0.5), MAX_RATE_WAIT_S)
    return None


class AlpacaRest:
    """The trading client, called safely. `call(fn, *args)` runs `fn(client, *args)`."""

    def __init__(self, settings: AlpacaSettings, keys: AlpacaKeys,
                 rng: random.Random | None = None) -> None:
        self.client = TradingClient(keys.key_id, keys.secret_key, paper=not settings.live,
                                    url_override=settings.trading_url())
        # Below the public API (hence the pinned alpaca-py): a timeout on every request,
        # and no retry-by-sleeping on 429 (the limiter below does it without a thread).
        self.client._session = _TimeoutSession(settings.request_timeout_s)
        self.client._retry = 0
        self.limiter = RateLimiter(settings.requests_per_minute)
        self.rng = rng or random.Random()
        self.rate_limited = 0  # 429s seen (health, tests)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        attempt = 0
        while True:
            await self.limiter.acquire()
            try:
                return await asyncio.to_thread(fn, self.client, *args)
            except Exception as exc:  # sorted below: every failure becomes one of ours
                status = getattr(exc, "status_code", None) if isinstance(exc, APIError) else None
                if status != 429:
                    raise classify(exc) from exc
                self.rate_limited += 1
                if attempt >= MAX_RATE_RETRIES:
                    raise AlpacaInDoubt("Alpaca keeps answering 429 (too many requests)",
                                        429) from exc
                # A 429 was not carried out: waiting and sending again is safe.
                ceiling = min(_RATE_BACKOFF_S[1], _RATE_BACKOFF_S[0] * 2 ** attempt)
                wait = min(_retry_after(exc) or self.rng.uniform(ceiling / 2, ceiling),
                           MAX_RATE_WAIT_S)
                log.warning("Alpaca rate limit (429): waiting %.1f s", wait)
                self.limiter.pause(wait)
                attempt += 1
