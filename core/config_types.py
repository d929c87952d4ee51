"""Building blocks of the settings models, shared by `core.config` and
`core.config_trading`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from core.model import is_well_formed_symbol, normalize_symbol


class Section(BaseModel):
    """A settings table: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _ticker(value: Any) -> Any:
    return normalize_symbol(value) if isinstance(value, str) else value


def _check_ticker(symbol: str) -> str:
    if not is_well_formed_symbol(symbol):
        raise ValueError("expected a ticker symbol such as AAPL or BRK.B")
    return symbol


def _unique(symbols: list[str]) -> list[str]:
    return list(dict.fromkeys(symbols))


Ticker = Annotated[str, BeforeValidator(_ticker), AfterValidator(_check_ticker)]
SymbolList = Annotated[list[Ticker], AfterValidator(_unique)]
