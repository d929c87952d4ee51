"""Finding strategies: the `tapedeck.strategies` entry points (the built-ins and any
installed package's), then the modules of the user's strategy folder.

A strategy that fails to import, or is not a proper `Strategy`, is left out with a
problem naming it and the error (the traceback is kept for the log); the rest load.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import sys
import traceback
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from core.strategies.base import Strategy, StrategyParams

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "tapedeck.strategies"
USER_MODULE_PREFIX = "tapedeck_user_strategies"


@dataclass(frozen=True, slots=True)
class LoadProblem:
    source: str  # the entry point or file
    message: str
    traceback: str = ""


@dataclass(slots=True)
class StrategyRegistry:
    classes: dict[str, type[Strategy[Any]]] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)  # name -> where it came from
    problems: list[LoadProblem] = field(default_factory=list)

    def get(self, name: str) -> type[Strategy[Any]]:
        try:
            return self.classes[name]
        except KeyError:
            known = ", ".join(sorted(self.classes)) or "none"
            raise KeyError(f"unknown strategy {name!r} (known: {known})") from None

    def add(self, candidate: object, source: str) -> None:
        problem = strategy_problem(candidate)
        if problem:
            self.problems.append(LoadProblem(source, problem))
            return
        assert isinstance(candidate, type)
        name = candidate.name  # type: ignore[attr-defined]
        if name in self.classes:
            self.problems.append(LoadProblem(
                source, f"a strategy named {name!r} exists already "
                f"({self.origins[name]}): this one is ignored"))
            return
        self.classes[name] = candidate
        self.origins[name] = source


def strategy_problem(candidate: object) -> str:
    """What keeps `candidate` from being a usable strategy class ('' when nothing)."""
    if not (inspect.isclass(candidate) and issubclass(candidate, Strategy)):
        return f"{candidate!r} is not a Strategy subclass"
    if inspect.isabstract(candidate):
        missing = ", ".join(sorted(getattr(candidate, "__abstractmethods__", ())))
        return f"{candidate.__name__} does not implement {missing}"
    name = getattr(candidate, "name", "")
    if not isinstance(name, str) or not name.isidentifier():
        return f"{candidate.__name__} needs a `name` that is an identifier, not {name!r}"
    params = getattr(candidate, "Params", None)
    if not (inspect.isclass(params) and issubclass(params, StrategyParams)):
        return f"{candidate.__name__}.Params must be a StrategyParams model"
    try:
        params()
    except Exception as err:
        return f"{candidate.__name__}.Params has no valid defaults: {err}"
    return ""


def strategy_folder(configured: Path | None, config_file: Path | None = None) -> Path | None:
    """The user's strategy folder: the configured one, else 'strategies' beside the
    config file when it exists."""
    if configured is not None:
        return configured
    from core.config import config_path

    beside = (config_file or config_path()).expanduser().parent / "strategies"
    return beside if beside.is_dir() else None


def discover(folder: Path | None = None) -> StrategyRegistry:
    registry = StrategyRegistry()
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        source = f"entry point {entry.name} ({entry.value})"
        try:
            loaded = entry.load()
        except Exception as err:
            registry.problems.append(LoadProblem(source, f"failed to import: {err}",
                                                 traceback.format_exc()))
            continue
        registry.add(loaded, source)
    if folder is not None and folder.is_dir():
        for path in sorted(folder.glob("*.py")):
            if not path.name.startswith("_"):
                _load_file(registry, path)
    for problem in registry.problems:
        log.error("strategy %s: %s", problem.source, problem.message)
    return registry


def _load_file(registry: StrategyRegistry, path: Path) -> None:
    module_name = f"{USER_MODULE_PREFIX}.{path.stem}"
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    except BaseException as err:  # a user's module may even call sys.exit
        sys.modules.pop(module_name, None)
        if isinstance(err, KeyboardInterrupt):
            raise
        registry.problems.append(LoadProblem(str(path), f"failed to import: "
                                             f"{type(err).__name__}: {err}",
                                             traceback.format_exc()))
        return
    found = [obj for obj in vars(module).values()
             if inspect.isclass(obj) and issubclass(obj, Strategy) and obj is not Strategy
             and obj.__module__ == module_name and not inspect.isabstract(obj)]
    if not found:
        registry.problems.append(LoadProblem(str(path), "defines no Strategy subclass"))
    for candidate in found:
        registry.add(candidate, str(path))
