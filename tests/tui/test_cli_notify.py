"""`tapedeck notify test` through typer's runner, with real apprise posting to an HTTP
server on loopback: a table of what arrived where, exit 1 when a send failed, and one
clear line (never a traceback) when nothing is configured or a kind is mistyped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from core.config_notify import KINDS
from tests.core.test_notify import Receiver
from tui.cli import app


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def configure(home: Path, text: str) -> Path:
    path = home / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def run(*args: str) -> Result:
    result = CliRunner().invoke(app, ["notify", "test", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception)
    return result


def test_every_kind_goes_to_each_target_and_the_table_says_so(
        isolated_environment: Path, receiver: Receiver) -> None:
    configure(isolated_environment, f'[notify.targets]\nphone = "{receiver.url("phone")}"\n'
              f'desk = "{receiver.url("desk")}"\n'
              '[[notify.rules]]\nkinds = ["kill_switch"]\ntargets = ["phone"]\n'
              '[[notify.rules]]\nkinds = ["*"]\ntargets = ["desk"]\n')
    result = run()
    assert result.exit_code == 0, result.output
    assert len(receiver.titles("desk")) == len(KINDS)
    assert receiver.titles("phone") == ["[test] KILL SWITCH: trading halted"]
    rows = [line for line in result.output.splitlines() if "│ ok" in line]
    assert len(rows) == len(KINDS) + 1
    assert f"{len(KINDS) + 1} of {len(KINDS) + 1} test messages sent" in result.output


def test_one_kind_and_a_failing_target_exit_1_with_the_reason(
        isolated_environment: Path, receiver: Receiver) -> None:
    configure(isolated_environment, f'[notify.targets]\nphone = "{receiver.url("phone")}"\n'
              'pager = "json://127.0.0.1:1/refused"\n')
    result = run("--kind", "fill")
    assert result.exit_code == 1, result.output
    assert receiver.titles("phone") == ["[test] Filled BUY 100 AAPL @ 187.20"]
    assert "FAILED: A Connection error occurred" in result.output
    assert "1 of 2 test messages sent" in result.output


def test_a_kind_no_rule_routes_is_named(isolated_environment: Path,
                                        receiver: Receiver) -> None:
    configure(isolated_environment, f'[notify.targets]\nphone = "{receiver.url("phone")}"\n'
              '[[notify.rules]]\nkinds = ["fill"]\ntargets = ["phone"]\n')
    result = run("-k", "fill", "-k", "scan_hit")
    assert result.exit_code == 0, result.output
    assert "not sent (no rule routes them): scan_hit" in result.output
    result = run("-k", "scan_hit")
    assert result.exit_code == 1
    assert "the rules send none of these kinds to any target" in result.output


def test_without_targets_it_says_how_to_add_one(isolated_environment: Path) -> None:
    result = run()
    assert result.exit_code == 1
    assert "tapedeck: no notification targets: add one to" in result.output
    assert 'phone = "ntfy://ntfy.sh/your-topic"' in result.output
    assert "Traceback" not in result.output


def test_mistakes_are_one_line(isolated_environment: Path, tmp_path: Path) -> None:
    result = run("--kind", "fills")
    assert result.exit_code == 2
    assert result.output.startswith("tapedeck: unknown kind 'fills': the kinds are fill, ")
    bad = tmp_path / "bad.toml"
    bad.write_text('[notify]\nquiet_hours = "late"\n', encoding="utf-8")
    result = run("--config", str(bad))
    assert result.exit_code == 2
    assert result.output.strip().endswith(
        'notify.quiet_hours: expected a time range such as "22:00-07:00", or "" for none, '
        "got 'late'")
