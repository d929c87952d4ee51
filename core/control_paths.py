"""Where a profile's control socket lives, and who is at the other end of it.

The socket sits in a private directory (0700) of the user runtime dir; `ensure_private_dir`
refuses one another user made first. The kernel says who connected (`peer_credentials`),
so the server can refuse any other user even if the directory were opened up.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.config import Settings

SUN_PATH_MAX = 107  # bytes of a Unix socket's path (108 with the terminating NUL)


class ControlError(Exception):
    """The control socket cannot be set up or reached; the message is for the trader."""


def runtime_dir() -> Path:
    """The private directory of the profiles' sockets: the user runtime dir (tmpfs,
    per user, cleared at logout) when there is one, else one under the temp dir."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and Path(base).is_dir():
        return Path(base) / "tapedeck"
    # No runtime dir (a plain `su`, some containers): a directory of our own in the temp
    # dir; `ensure_private_dir` refuses one another user made first.
    return Path(tempfile.gettempdir()) / f"tapedeck-{os.getuid()}"


def socket_path(settings: Settings) -> Path:
    """The profile's control socket: `[daemon] socket`, or `<profile>.sock` in the
    runtime dir (with a hash of the database's path when `[store] path` is set, so two
    databases under one profile name do not share a socket)."""
    if settings.daemon.socket is not None:
        return settings.daemon.socket
    name = settings.store.profile
    if settings.store.path is not None:
        digest = hashlib.sha256(str(settings.store.path.expanduser().resolve()).encode())
        name += "-" + digest.hexdigest()[:8]
    return runtime_dir() / f"{name}.sock"


def ensure_private_dir(path: Path) -> None:
    """Create the socket's directory 0700, or check one that exists is ours and
    private (tighten it if it is ours but open)."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except OSError as err:
        raise ControlError(f"cannot create the socket directory {path}: {err.strerror}") from err
    if info.st_uid != os.getuid():
        raise ControlError(f"the socket directory {path} belongs to another user "
                           f"(uid {info.st_uid}); set [daemon] socket to a path of yours")
    if info.st_mode & 0o077:
        try:
            path.chmod(0o700)
        except OSError as err:
            raise ControlError(f"cannot make {path} private: {err.strerror}") from err


def check_path_length(path: Path) -> None:
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise ControlError(f"the socket path {path} is longer than {SUN_PATH_MAX} bytes, "
                           "the limit of a Unix socket; set [daemon] socket to a shorter one")


def peer_credentials(sock: socket.socket) -> tuple[int, int] | None:
    """(pid, uid) of the process at the other end, from the kernel; None where the
    platform cannot say (the 0700 directory is then the only guard)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    data = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", data)
    return pid, uid
