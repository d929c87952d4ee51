"""Settings for the headless daemon and its control socket (`[daemon]`). Part of
`core.config.Settings`; kept apart only for size."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from core.config_types import Section


class DaemonSettings(Section):
    socket: Path | None = Field(
        default=None,
        description="Control socket; when unset, <profile>.sock in a private directory "
                    "under the user runtime dir.")
    heartbeat_s: float = Field(
        default=5.0, gt=0, le=300,
        description="Seconds between health records written to the database "
                    "(what `tapedeck status` reads when the daemon is gone).")
    push_hz: float = Field(
        default=10.0, ge=1, le=60,
        description="Change sets per second pushed to each attached client.")
    client_buffer_kb: int = Field(
        default=8192, ge=64, le=1_048_576,
        description="A client that leaves more than this much output unread is "
                    "disconnected, so a slow client never holds the engine back.")
    max_clients: int = Field(
        default=16, ge=1, le=256, description="Attached clients at once.")

    @field_validator("socket")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()
