from __future__ import annotations

import subprocess
import sys
from datetime import date, time
from pathlib import Path
from typing import Any

import pytest

from core import config as config_module
from core.config import (
    DEFAULT_WATCHLISTS,
    ConfigError,
    Settings,
    config_path,
    env_overrides,
    load_settings,
)
from core.config_text import default_config_text, redacted

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path | None, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={} if environ is None else environ)
    return str(caught.value)


def test_no_file_gives_defaults(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "missing.toml", environ={})
    assert settings == Settings()
    assert settings.feed.provider == "replay"
    assert settings.feed.fallback == "sim"
    assert settings.replay.start == date(2019, 1, 2)
    assert settings.replay.start_time == time(9, 30)
    assert settings.replay.day_seconds == 240.0
    assert settings.replay.steps_per_day == 1560
    assert settings.sim.seed == 42
    assert settings.ui.timezone == "America/New_York"
    assert settings.store.profile == "default"
    assert settings.logging.level == "info"
    assert settings.keys == {}
    assert settings.watchlists == DEFAULT_WATCHLISTS


def test_default_path_comes_from_tapedeck_config(isolated_environment: Path) -> None:
    # conftest points TAPEDECK_CONFIG at a file that does not exist yet.
    assert config_path() == isolated_environment / "config.toml"
    assert load_settings() == Settings()
    (isolated_environment / "config.toml").write_text("[sim]\nseed = 3\n")
    assert load_settings().sim.seed == 3


def test_tapedeck_config_points_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = write(tmp_path, "[ui]\ntheme = 'tapedeck-light'\n", "other.toml")
    monkeypatch.setenv("TAPEDECK_CONFIG", str(elsewhere))
    assert config_path() == elsewhere
    assert load_settings().ui.theme == "tapedeck-light"
    assert config_path({"TAPEDECK_CONFIG": "/x/y.toml"}) == Path("/x/y.toml")


def test_without_tapedeck_config_uses_the_user_config_dir(isolated_environment: Path) -> None:
    assert config_path({}) == isolated_environment / "config" / "tapedeck" / "config.toml"


def test_file_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [feed]
        provider = "sim"
        fallback = ""
        [replay]
        start = 2020-03-02
        start_time = 11:15:00
        day_seconds = 60
        paused = true
        [ui]
        timezone = "local"
        refresh_hz = 30
        [store]
        profile = "paper-1"
        path = "~/trading/paper.sqlite"
        [logging]
        level = "DEBUG"
        [keys]
        "watchlist.add" = "a"
        [watchlists]
        Mine = ["aapl", "brk.b", "BF-B", "AAPL"]
        """,
    )
    settings = load_settings(path, environ={})
    assert settings.feed.provider == "sim"
    assert settings.feed.fallback == ""
    assert settings.replay.start == date(2020, 3, 2)
    assert settings.replay.start_time == time(11, 15)
    assert settings.replay.day_seconds == 60.0
    assert settings.replay.paused is True
    assert settings.ui.timezone == "local"
    assert settings.ui.refresh_hz == 30.0
    assert settings.logging.level == "debug"
    assert settings.keys == {"watchlist.add": "a"}
    # Upper-cased, and the repeated AAPL kept once; the file's lists replace the defaults.
    assert settings.watchlists == {"Mine": ["AAPL", "BRK.B", "BF-B"]}
    assert settings.store.path == Path.home() / "trading" / "paper.sqlite"
    assert settings.database_path() == Path.home() / "trading" / "paper.sqlite"


def test_database_path_defaults_to_the_profile(isolated_environment: Path) -> None:
    settings = Settings.model_validate({"store": {"profile": "paper"}})
    assert settings.database_path() == isolated_environment / "data" / "tapedeck" / "paper.sqlite"


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, "[replay]\ndayseconds = 60\n")
    message = load_error(path)
    assert message == f"{path}: unknown key replay.dayseconds (did you mean day_seconds?)"


def test_unknown_section_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, "[replya]\nseed = 1\n")
    assert load_error(path) == f"{path}: unknown key replya (did you mean replay?)"


def test_unknown_key_without_a_close_match_lists_the_known_ones(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, "[sim]\nzzz = 1\n"))
    assert "unknown key sim.zzz (known keys: seed)" in message


def test_wrong_type_names_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[replay]\nday_seconds = "fast"\n')
    assert load_error(path) == (
        f"{path}: replay.day_seconds: expected a number greater than 0, got 'fast'"
    )


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            "[replay]\nday_seconds = 0",
            "replay.day_seconds: expected a number greater than 0, got 0",
        ),
        (
            "[replay]\nsteps_per_day = 10",
            "replay.steps_per_day: expected a whole number from 26 to 23400, got 10",
        ),
        ("[replay]\nresume = 'maybe'", "replay.resume: expected true or false, got 'maybe'"),
        ("[replay]\nstart = 'soon'", "replay.start: expected a date such as 2019-01-02"),
        ("[replay]\nstart_time = 'noon'", "replay.start_time: expected a time of day"),
        (
            "[replay]\nstart_time = 08:00:00",
            "replay.start_time: expected a New York time of day from 09:30 to 16:00, such as "
            "11:00, got 08:00:00",
        ),
        ("[ui]\nrefresh_hz = 100", "ui.refresh_hz: expected a number from 1 to 60, got 100"),
        ("[ui]\ntheme = ''", "ui.theme: expected non-empty text, got ''"),
        ("[ui]\nflash_ms = -1", "ui.flash_ms: expected a whole number from 0 to 5000, got -1"),
        (
            "[logging]\nlevel = 'LOUD'",
            "logging.level: expected one of 'debug', 'info', 'warning', 'error', got 'LOUD'",
        ),
        (
            "[store]\nprofile = 'my profile'",
            "store.profile: expected 1-64 letters, digits, '-' or '_', got 'my profile'",
        ),
        ("replay = 5", "replay: expected a table, got 5"),
        ('[keys]\n"order.buy" = 1', 'keys."order.buy": expected non-empty text, got 1'),
        (
            "[feed]\nbackoff_initial_s = 10\nbackoff_max_s = 5",
            "feed: backoff_max_s (5) must be at least backoff_initial_s (10)",
        ),
    ],
)
def test_value_errors(tmp_path: Path, toml: str, expected: str) -> None:
    path = write(tmp_path, toml + "\n")
    assert f"{path}: {expected}" in load_error(path)


def test_every_problem_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "[sim]\nseed = 'x'\n[ui]\nflash_ms = 'y'\n")
    message = load_error(path)
    assert len(message.splitlines()) == 2
    assert "sim.seed" in message
    assert "ui.flash_ms" in message


def test_toml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "[replay]\nseed = 1\nday_seconds = = 3\n")
    message = load_error(path)
    assert message.startswith(f"{path}: line 3, column 15: invalid TOML")


def test_toml_error_at_end_of_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[ui]\ntheme = "unterminated')
    assert load_error(path).startswith(f"{path}: line 2, column 22 (end of file): invalid TOML")


def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    directory = tmp_path / "config.toml"
    directory.mkdir()
    assert load_error(directory).startswith(f"{directory}: cannot read the file")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert "not UTF-8" in load_error(binary)


def test_bad_timezone(tmp_path: Path) -> None:
    path = write(tmp_path, "[ui]\ntimezone = 'Mars/Olympus_Mons'\n")
    assert load_error(path) == (
        f"{path}: ui.timezone: expected an IANA time zone such as 'America/New_York', "
        "or 'local', got 'Mars/Olympus_Mons'"
    )


def test_bad_symbol_in_watchlists(tmp_path: Path) -> None:
    path = write(tmp_path, "[watchlists]\nCore = ['AAPL', 'apple inc']\n")
    assert load_error(path) == (
        f"{path}: watchlists.Core[1]: expected a ticker symbol such as AAPL or BRK.B, "
        "got 'apple inc'"
    )


def test_env_overrides_nested_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "[replay]\nday_seconds = 100\nseed = 3\n")
    environ = {
        "TAPEDECK_REPLAY__DAY_SECONDS": "60",
        "TAPEDECK_REPLAY__START_TIME": "11:00",
        "tapedeck_replay__paused": "true",
        "TAPEDECK_UI__THEME": "tapedeck-light",
        "TAPEDECK_WATCHLISTS__Mine": '["aapl", "msft"]',
        "TAPEDECK_WATCHLISTS__Plain": "xom, cvx",
        "TAPEDECK_STORE__PROFILE": "123",
        "TAPEDECK_KEYS__quit": "q",
        "TAPEDECK_CONFIG": "ignored-here.toml",
        "TAPEDECK_SOMETHING": "not a setting",
    }
    settings = load_settings(path, environ=environ)
    assert settings.replay.day_seconds == 60.0  # the variable beats the file
    assert settings.replay.seed == 3  # the file still counts for other keys
    assert settings.replay.paused is True
    assert settings.replay.start_time == time(11, 0)
    assert settings.ui.theme == "tapedeck-light"
    assert settings.store.profile == "123"  # text fields are never read as JSON
    assert settings.keys == {"quit": "q"}
    assert settings.watchlists["Mine"] == ["AAPL", "MSFT"]
    assert settings.watchlists["Plain"] == ["XOM", "CVX"]
    assert settings.watchlists["Core"] == DEFAULT_WATCHLISTS["Core"]


def test_env_overrides_helper() -> None:
    assert env_overrides(
        {
            "TAPEDECK_REPLAY__SEED": "5",
            "TAPEDECK_FEED__STALE_AFTER_S": "2.5",
            "TAPEDECK_UI__TIMEZONE": "UTC",
            "HOME": "/root",
        }
    ) == {"replay": {"seed": 5}, "feed": {"stale_after_s": 2.5}, "ui": {"timezone": "UTC"}}


def test_env_error_names_the_variable(tmp_path: Path) -> None:
    message = load_error(tmp_path / "none.toml", {"TAPEDECK_REPLAY__DAY_SECONDS": "fast"})
    assert message == (
        "TAPEDECK_REPLAY__DAY_SECONDS: replay.day_seconds: "
        "expected a number greater than 0, got 'fast'"
    )
    message = load_error(tmp_path / "none.toml", {"TAPEDECK_UI__REFRESHHZ": "5"})
    assert message == "TAPEDECK_UI__REFRESHHZ: unknown key ui.refreshhz (did you mean refresh_hz?)"
    message = load_error(tmp_path / "none.toml", {"TAPEDECK_REPLAY__": "5"})
    assert message.startswith("TAPEDECK_REPLAY__: not a setting name")


def test_default_config_text_loads_back_to_the_defaults(tmp_path: Path) -> None:
    text = default_config_text()
    for section in ("feed", "replay", "sim", "ui", "store", "logging", "keys", "watchlists"):
        assert f"[{section}]" in text
    for name in Settings.model_fields["replay"].annotation.model_fields:  # type: ignore[union-attr]
        assert f"\n{name} = " in text
    assert all(len(line) <= 100 for line in text.splitlines())
    assert load_settings(write(tmp_path, text), environ={}) == Settings()


def test_redaction_hides_secrets_at_any_depth() -> None:
    class BrokerSettings(config_module.Section):
        name: str = "paper"
        api_key: str = "AKIA-123"
        secret_key: str = "s3cr3t"
        access_token: str | None = None
        extra: dict[str, Any] = {"password": "hunter2", "nested": {"refresh_token": "t"}}

    class WithBroker(Settings):
        broker: BrokerSettings = BrokerSettings()

    settings = WithBroker.model_validate(
        {"keys": {"watchlist.add": "a"}, "watchlists": {"Key picks": ["AAPL"]}}
    )
    shown = redacted(settings)
    assert shown["broker"] == {
        "name": "paper",
        "api_key": "***",
        "secret_key": "***",
        "access_token": None,  # unset is not a secret, and it helps to see it is unset
        "extra": {"password": "***", "nested": {"refresh_token": "***"}},
    }
    assert shown["keys"] == {"watchlist.add": "a"}  # key bindings are not keys to hide
    assert shown["watchlists"] == {"Key picks": ["AAPL"]}
    assert shown["replay"]["start"] == "2019-01-02"
    assert shown["store"]["path"] is None
    assert "hunter2" not in repr(shown)


def test_settings_validate_assignment() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="greater than 0"):
        settings.replay.day_seconds = -1


def test_config_module_stays_light() -> None:
    code = (
        "import sys, core.config\n"
        "heavy = {'pandas', 'textual', 'aiosqlite', 'numpy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
