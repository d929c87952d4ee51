"""The database file: where it lives, what can be wrong with it, and the lock that keeps
a second engine off it.

A sidecar `<db>.lock` file held with `flock` keeps a second engine off the same file;
the kernel drops the lock when the process dies, even on SIGKILL.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from pathlib import Path

import platformdirs


def default_database_path(profile: str = "default") -> Path:
    return Path(platformdirs.user_data_dir("tapedeck")) / f"{profile}.sqlite"


class StoreError(Exception):
    """The database cannot be used; `str(err)` is a complete sentence naming the file."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


class StoreLockedError(StoreError):
    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid is not None else "a process whose pid is not known yet"
        super().__init__(
            path,
            f"{path} is in use by another tapedeck ({holder}); quit that one first, "
            "or choose another profile",
        )
        self.pid = pid


class StoreCorruptError(StoreError):
    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(
            path,
            f"{path} is damaged and cannot be used ({detail}); move it aside "
            f"(e.g. rename it to {path.name}.damaged) and tapedeck will start a fresh one",
        )


class StoreSchemaTooNewError(StoreError):
    def __init__(self, path: Path, found: int, supported: int) -> None:
        super().__init__(
            path,
            f"{path} was written by a newer tapedeck (schema v{found}, this build knows up "
            f"to v{supported}); upgrade tapedeck or choose another profile",
        )
        self.found = found
        self.supported = supported


class StoreUnavailableError(StoreError):
    pass


def classify(path: Path, err: sqlite3.Error) -> StoreError:
    code = getattr(err, "sqlite_errorcode", 0) & 0xFF
    if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return StoreCorruptError(path, str(err))
    if code in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY):
        return StoreUnavailableError(path, f"cannot open {path}: {err}")
    return StoreError(path, f"cannot open {path}: {err}")


def claim(path: Path, *, read_only: bool) -> tuple[Path, int | None]:
    """Resolve the path, make its directory and take the lock (none when read-only)."""
    # Resolved so that two spellings of one file (symlinks, ~) share one lock file.
    path = Path(path).expanduser().resolve()
    if read_only:
        if not path.is_file():
            raise StoreUnavailableError(path, f"no database at {path} (nothing saved yet?)")
        return path, None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreUnavailableError(
            path, f"cannot create the directory for {path}: {err.strerror}"
        ) from err
    return path, _acquire_lock(path)


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _acquire_lock(path: Path) -> int:
    lock_path = _lock_path(path)
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise StoreUnavailableError(
                path, f"cannot create the lock file {lock_path}: {err.strerror}"
            ) from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise StoreLockedError(path, int(text) if text.isdigit() else None) from None
        except OSError as err:
            os.close(fd)
            raise StoreUnavailableError(path, f"cannot lock {lock_path}: {err.strerror}") from err
        # The previous holder unlinks the file just before releasing it, so we may have
        # locked an inode no longer reachable by name; such a lock excludes nobody.
        try:
            on_disk = os.stat(lock_path)
        except FileNotFoundError:
            os.close(fd)
            continue
        held = os.fstat(fd)
        if (on_disk.st_dev, on_disk.st_ino) != (held.st_dev, held.st_ino):
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        return fd


def release_lock(path: Path, fd: int) -> None:
    # Unlink while still holding the lock (see _acquire_lock's inode check).
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_lock_path(path))
    os.close(fd)
