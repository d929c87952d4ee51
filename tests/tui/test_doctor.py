"""`tapedeck doctor` and the live-trading confirmation, through the real CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.alpaca_server import FakeAlpaca
from tests.tui.test_cli_trading import run


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    with FakeAlpaca() as server:
        yield server


def write_config(home: Path, text: str) -> None:
    (home / "config.toml").write_text(text, encoding="utf-8")


def alpaca_config(fake: FakeAlpaca, keys: bool = True, live: bool = False) -> str:
    lines = ['[trading]', 'broker = "alpaca"', '[alpaca]', f'paper_url = "{fake.trading_url}"',
             f'live_url = "{fake.trading_url}"', f"live = {'true' if live else 'false'}",
             "request_timeout_s = 2"]
    if keys:
        lines += [f'key_id = "{fake.key_id}"', f'secret_key = "{fake.secret_key}"']
    return "\n".join(lines) + "\n"


def test_all_good_on_the_defaults(isolated_environment: Path) -> None:
    result = run("doctor")
    assert result.exit_code == 0, result.output
    assert "✓ config" in result.stdout
    assert "✓ data (replay)" in result.stdout
    assert "all good" in result.stdout


def test_a_broken_config_says_what_and_how(isolated_environment: Path) -> None:
    write_config(isolated_environment, "[risk]\nmax_order_notional = -5\n")
    result = run("doctor")
    assert result.exit_code == 1
    assert "✗ config" in result.stdout
    assert "max_order_notional" in result.stdout
    assert "fix: edit" in result.stdout


def test_a_damaged_database_is_named_with_the_way_out(isolated_environment: Path) -> None:
    database = isolated_environment / "data" / "tapedeck" / "default.sqlite"
    database.parent.mkdir(parents=True)
    database.write_bytes(b"this is not a database" * 100)
    result = run("doctor")
    assert result.exit_code == 1
    assert "✗ database" in result.stdout
    assert "move it aside" in result.stdout


def test_alpaca_keys_accepted(isolated_environment: Path, fake: FakeAlpaca) -> None:
    write_config(isolated_environment, alpaca_config(fake))
    result = run("doctor")
    assert "✓ broker (alpaca paper)" in result.stdout, result.stdout
    assert "ACTIVE" in result.stdout
    assert fake.secret_key not in result.stdout


def test_alpaca_keys_refused(isolated_environment: Path, fake: FakeAlpaca,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(isolated_environment, alpaca_config(fake))
    monkeypatch.setenv("APCA_API_SECRET_KEY", "not-the-secret")  # the environment wins
    result = run("doctor")
    assert result.exit_code == 1
    assert "✗ broker (alpaca paper)" in result.stdout
    assert "use paper keys for paper trading" in result.stdout


def test_alpaca_keys_missing(isolated_environment: Path, fake: FakeAlpaca) -> None:
    write_config(isolated_environment, alpaca_config(fake, keys=False))
    result = run("doctor")
    assert result.exit_code == 1
    assert "no API keys" in result.stdout
    assert "APCA_API_KEY_ID" in result.stdout


def test_config_show_redacts_the_keys(isolated_environment: Path, fake: FakeAlpaca) -> None:
    write_config(isolated_environment, alpaca_config(fake))
    result = run("config", "show")
    assert result.exit_code == 0
    assert fake.secret_key not in result.stdout
    assert fake.key_id not in result.stdout


def test_live_needs_confirmation_off_a_terminal(isolated_environment: Path,
                                                fake: FakeAlpaca) -> None:
    write_config(isolated_environment, alpaca_config(fake, live=True))
    for command in ([], ["ui"], ["daemon"]):
        result = run(*command)
        assert result.exit_code == 2
        assert "LIVE Alpaca account" in result.stderr
        assert "--live" in result.stderr


def test_live_at_a_terminal_asks_for_the_word(isolated_environment: Path, fake: FakeAlpaca,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.tui.test_cli_trading import CliRunner, app

    monkeypatch.setattr("tui.live_check._interactive", lambda: True)
    write_config(isolated_environment, alpaca_config(fake, live=True))
    result = CliRunner().invoke(app, ["ui"], input="yes\n")
    assert result.exit_code == 1
    assert "Type LIVE" in result.stderr
    assert "not confirmed" in result.stderr
    assert fake.count("GET", "/v2/account") == 0  # nothing connected before the answer
