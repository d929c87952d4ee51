"""The engine's hot modules compiled to C extensions, with mypyc (it comes with mypy).

The order path (strategy, request checks, risk, the paper venue, the order state
machine, the portfolio) and the backtester's day loop are plain, fully typed Python; mypyc
turns them into C extensions that run the same code about twice as fast. `make`
builds them (`python -m core.native build MODULE.py ...`, the list is the Makefile's
NATIVE_MODULES); each lands beside its source as `core/.../NAME.cpython-*.so`, with
the runtime they share as `core/_native__mypyc.*.so`. Python imports an extension in
preference to the source next to it, so:

- `TAPEDECK_NATIVE=0 make native` (or no C compiler) leaves them out: everything then
  runs as pure Python, the same behaviour, slower.
- A source edited after its build would be shadowed by the old extension: `stale()`
  finds those, the test suite refuses to run on them and the CLI warns; `make` rebuilds.

This module is never compiled itself.
"""

from __future__ import annotations

import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(__file__).resolve().parent
GROUP = "core._native"  # the shared runtime: core/_native__mypyc.*.so


def extensions() -> list[Path]:
    """The compiled modules present beside their sources (the shared runtime aside)."""
    found = []
    for suffix in EXTENSION_SUFFIXES:
        for path in PACKAGE.rglob(f"*{suffix}"):
            if not path.name.startswith("_native__mypyc"):
                found.append(path)
    return sorted(set(found))


def source_of(extension: Path) -> Path:
    return extension.with_name(extension.name.split(".")[0] + ".py")


def stale() -> list[Path]:
    """Sources changed after their extension was built (the extension would run the
    old code)."""
    return [source_of(ext) for ext in extensions()
            if source_of(ext).exists() and source_of(ext).stat().st_mtime > ext.stat().st_mtime]


def is_compiled(module_name: str) -> bool:
    """Whether `module_name` (imported) runs from a C extension."""
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None) or ""
    return any(file.endswith(suffix) for suffix in EXTENSION_SUFFIXES)


def remove() -> None:
    for path in extensions():
        path.unlink()
    for suffix in EXTENSION_SUFFIXES:
        for path in PACKAGE.glob(f"_native__mypyc*{suffix}"):
            path.unlink()


def build(sources: list[str]) -> None:
    """Compile `sources` (paths from the project root) in place, as one group."""
    from mypyc.build import mypycify  # the dev extra: only a build needs it
    from setuptools import setup  # type: ignore[import-untyped]

    remove()
    setup(name="tapedeck-native",
          ext_modules=mypycify(sources, opt_level="3", group_name=GROUP,
                               target_dir=str(ROOT / "build" / "native")),
          script_args=["--quiet", "build_ext", "--inplace",
                       "--build-temp", str(ROOT / "build" / "native-obj")])
    # An extension whose C did not change is copied with its old time: date them all
    # now, so that `stale` compares the sources with this build.
    for path in extensions():
        path.touch()


def main(argv: list[str]) -> int:
    if argv[:1] == ["build"] and len(argv) > 1:
        build(argv[1:])
        return 0
    if argv == ["remove"]:
        remove()
        return 0
    if argv == ["stale"]:
        for path in stale():
            print(path.relative_to(ROOT))
        return 0
    print("usage: python -m core.native build MODULE.py ... | remove | stale", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
