"""The strategies `tapedeck backtest` can run (the registry, with the user's folder)
and their parameters from the command line's NAME=VALUE text."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from core.backtest_grid import crash_text

if TYPE_CHECKING:
    from core.config import Settings
    from core.strategies.base import Strategy, StrategyParams
    from core.strategies.registry import StrategyRegistry

__all__ = ["crash_text", "known_strategies", "load_registry", "strategy_folder",
           "strategy_params", "unknown_params"]


def strategy_folder(settings: Settings, config: Path | None) -> Path | None:
    """The user's strategy folder: the configured one, else 'strategies' beside the
    config file (the engine finds it the same way)."""
    from core.strategies.registry import strategy_folder as folder_for

    return folder_for(settings.strategies.folder, config)


def load_registry(settings: Settings, config: Path | None) -> StrategyRegistry:
    from core.strategies.registry import discover

    # The registry logs each problem too; printed once below as a warning, not twice.
    with _silenced("core.strategies.registry"):
        registry = discover(strategy_folder(settings, config))
    for problem in registry.problems:
        typer.echo(f"tapedeck: warning: strategy {problem.source}: {problem.message}", err=True)
    return registry


@contextlib.contextmanager
def _silenced(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    propagate = logger.propagate
    quiet = logging.NullHandler()
    logger.addHandler(quiet)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(quiet)
        logger.propagate = propagate


def known_strategies(registry: StrategyRegistry) -> str:
    return "known: " + (", ".join(sorted(registry.classes)) or "none")


def unknown_params(strategy_class: type[Strategy[Any]], names: list[str]) -> str:
    """'' when the strategy has every param in `names`, else a line naming the others
    and the known ones."""
    fields = list(strategy_class.Params.model_fields)
    unknown = [name for name in names if name not in fields]
    if not unknown:
        return ""
    return (f"unknown param{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for "
            f"{strategy_class.name} (known: {', '.join(fields)})")


def strategy_params(strategy_class: type[Strategy[Any]], given: Mapping[str, Any]
                    ) -> StrategyParams:
    """The strategy's Params from NAME=VALUE text (or values). Raises ValueError with
    one line naming every problem ("param fast: ...")."""
    from pydantic import ValidationError

    unknown = unknown_params(strategy_class, list(given))
    if unknown:
        raise ValueError(unknown)
    try:
        # Lax mode: pydantic turns "50" into 50 and "true" into True, as the field says.
        return strategy_class.Params.model_validate(dict(given))
    except ValidationError as error:
        raise ValueError("; ".join(_param_problem(problem) for problem in error.errors())
                         ) from None
    except Exception as error:  # a user's validator may raise anything
        raise ValueError(f"params: {crash_text(error)}") from None


def _param_problem(problem: Any) -> str:
    message = str(problem["msg"]).removeprefix("Value error, ")
    location = ".".join(str(part) for part in problem["loc"])
    if not location:  # a check across fields (fast below slow)
        return f"params: {message}"
    given = problem.get("input")
    shown = f" (got {given!r})" if isinstance(given, str) else ""
    return f"param {location}: {message}{shown}"
