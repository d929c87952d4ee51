"""The apprise side of `core.notify`: building one `apprise.Apprise` per target from its
URLs (or from an apprise config file's tags), one blocking send, and keeping the tokens
URLs carry out of log lines. apprise is imported only here and only when used (it costs
about 0.1 s), so an engine without targets never loads it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

from core.config_notify import CONFIG_FILE_TARGET, NotifyLevel
from core.notify_messages import Message

if TYPE_CHECKING:
    import apprise


def notify_type(message: Message) -> str:
    if message.level >= NotifyLevel.ERROR:
        return "failure"
    if message.level >= NotifyLevel.WARNING:
        return "warning"
    return "success" if message.kind in ("fill", "feed_up") else "info"


def build(urls: list[str]) -> tuple[apprise.Apprise | None, str]:
    """One apprise object for a target's URLs, or the reason it cannot be made."""
    import apprise

    services = apprise.Apprise()
    bad = [url for url in urls if not services.add(url)]
    if bad:
        scheme = urlsplit(bad[0]).scheme or "?"
        return None, f"apprise cannot use its {scheme}:// URL (see apprise's URL docs)"
    return services, ""


def config_file_groups(path: Path) -> tuple[dict[str, list[str]], str]:
    """The apprise config file's URLs by tag (untagged ones under CONFIG_FILE_TARGET),
    or what is wrong with the file."""
    if not path.is_file():
        return {}, f"the apprise config file {path} does not exist"
    import apprise

    config = apprise.AppriseConfig()
    if not config.add(str(path)):
        return {}, f"the apprise config file {path} cannot be read"
    groups: dict[str, list[str]] = {}
    for service in config.services():
        url: str = service.url(privacy=False)  # type: ignore[no-untyped-call]
        for name in sorted(str(tag) for tag in service.tags) or [CONFIG_FILE_TARGET]:
            groups.setdefault(name, []).append(url)
    if not groups:
        return {}, f"the apprise config file {path} holds no URL apprise can use"
    return groups, ""


def deliver(services: apprise.Apprise, message: Message, timeout_s: float
             ) -> tuple[bool, str]:
    """Runs on the notifier's pool: one blocking apprise call."""
    import apprise

    # apprise refuses a message without a body.
    result = services.notify(body=message.body or message.title, title=message.title,
                             notify_type=notify_type(message), timeout=timeout_s)
    try:
        if result:
            return True, ""
        if result.status == apprise.AppriseResultStatus.TIMEOUT:
            return False, f"no answer within {timeout_s:g} s"
        problems = [entry.message for entry in result.logs()
                    if entry.level in ("WARNING", "ERROR", "CRITICAL")]
        return False, problems[-1] if problems else result.status.name.lower()
    finally:
        result.close()


def secrets(urls: Iterable[str]) -> list[str]:
    """The parts of the URLs that may be tokens, to keep them out of log lines."""
    found: set[str] = set()
    for url in urls:
        parts = urlsplit(url)
        found.update(part for part in (parts.username, parts.password) if part)
        found.update(unquote(piece) for piece in parts.path.split("/"))
        found.update(value for _, value in parse_qsl(parts.query))
        # A host without a dot is no host name: some services put their token there
        # (tgram://BOT_TOKEN/CHAT_ID).
        found.update(piece for piece in re.split(r"[@:]", parts.netloc)
                     if "." not in piece and piece != "localhost")
    return sorted((secret for secret in found if len(secret) >= 6), key=len, reverse=True)


def scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text

