"""The tapedeck engine: market state, orders, risk and persistence. Never imports the UI."""

from __future__ import annotations

__version__ = "0.1.0"
