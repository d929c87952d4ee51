"""The layering rules, checked in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys

import pytest


def modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", ["core.engine", "core.client", "data.replay", "data.sim"])
def test_core_and_data_never_import_textual(module: str) -> None:
    loaded = modules_after(f"import {module}")
    assert "textual" not in loaded
    assert not any(name == "tui" or name.startswith("tui.") for name in loaded)


def test_core_never_imports_a_concrete_feed() -> None:
    loaded = modules_after("import core.engine")
    assert not any(name.startswith("data.") for name in loaded)


def test_cli_help_imports_neither_textual_nor_pandas() -> None:
    loaded = modules_after("import tui.cli")
    assert "textual" not in loaded
    assert "pandas" not in loaded
