"""The scan language's vocabulary and tree: the fields and functions it knows (with
their signatures, defaults and bounds), the node types a scan parses into, and the
limits that keep any input cheap. `core.scan_language` reads text into these; the
evaluator walks them. See `core.scan_language` for the grammar."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

MAX_TEXT_LENGTH = 2_000  # characters of a scan
MAX_DEPTH = 40  # nested parentheses, calls, operators
MAX_NODES = 200
MAX_WINDOW = 1_000  # bars: of an indicator's window, an n-bars-ago, a sort's limit...
MAX_LOOKBACK = 2_000  # bars of history the whole expression reads, windows added up
MAX_LIMIT = 10_000
MAX_NUMBER = 1e15  # a literal larger than any price or volume is a typo

Kind = Literal["number", "series", "boolean"]
ArithmeticOperator = Literal["+", "-", "*", "/"]
ComparisonOperator = Literal["<", "<=", ">", ">=", "==", "!="]

# The bare fields. change and pct_change are against the previous close; vwap is the
# session's volume-weighted average price (intraday; the day's typical price on history).
FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "vwap", "change",
                           "pct_change")
KEYWORDS = frozenset({"and", "or", "not", "sort", "by", "asc", "desc", "limit"})
COMPARISONS = ("<=", ">=", "==", "!=", "<", ">")


@dataclass(frozen=True, slots=True)
class Parameter:
    """A whole-number or decimal parameter of a function, with its default (None: it
    must be given) and its bounds."""

    name: str
    default: float | None
    low: float
    high: float
    whole: bool = True


@dataclass(frozen=True, slots=True)
class Signature:
    """What a function takes: an optional leading series (`source`: the field used when
    it is left out; None: a series is required), then numeric parameters. `series_count`
    is 2 for the crossings, which take two series and nothing else."""

    source: str | None
    parameters: tuple[Parameter, ...]
    result: Kind = "series"
    series_count: int = 1
    about: str = ""

    def usage(self, name: str) -> str:
        if self.series_count == 2:
            return f"{name}(a, b)"
        parts = [] if self.source is None else [f"[series={self.source}]"]
        if self.source is None:
            parts.append("series")
        parts += [p.name if p.default is None else f"{p.name}={number_text(p.default)}"
                  for p in self.parameters]
        return f"{name}({', '.join(parts)})"


def _window(default: float | None = None, name: str = "n", low: int = 1) -> Parameter:
    return Parameter(name, default, low, MAX_WINDOW)


FUNCTIONS: dict[str, Signature] = {
    "sma": Signature("close", (_window(),), about="simple moving average"),
    "ema": Signature("close", (_window(),), about="exponential moving average"),
    "avg": Signature(None, (_window(),), about="average of any series over n bars"),
    "rsi": Signature("close", (_window(14, low=2),), about="relative strength index"),
    "macd": Signature("close", (_window(12, "fast"), _window(26, "slow")),
                      about="MACD line (fast EMA - slow EMA)"),
    "macd_signal": Signature("close", (_window(12, "fast"), _window(26, "slow"),
                                       _window(9, "signal")), about="MACD's signal line"),
    "bbands_upper": Signature("close", (_window(20), Parameter("dev", 2, 0.1, 10, False)),
                              about="upper Bollinger band"),
    "bbands_lower": Signature("close", (_window(20), Parameter("dev", 2, 0.1, 10, False)),
                              about="lower Bollinger band"),
    "bbands_width": Signature("close", (_window(20), Parameter("dev", 2, 0.1, 10, False)),
                              about="Bollinger band width, % of the middle band"),
    "atr": Signature(None, (_window(14, low=2),), series_count=0, about="average true range"),
    "adx": Signature(None, (_window(14, low=2),), series_count=0,
                     about="average directional index"),
    "stoch": Signature(None, (_window(14),), series_count=0, about="stochastic %K"),
    "highest": Signature("high", (_window(),), about="highest value of the last n bars"),
    "lowest": Signature("low", (_window(),), about="lowest value of the last n bars"),
    "pct_change": Signature("close", (_window(1),),
                            about="% change over n bars (the bare field: since the "
                                  "previous close)"),
    "crosses_above": Signature(None, (), "boolean", 2, "a was at or below b and is above"),
    "crosses_below": Signature(None, (), "boolean", 2, "a was at or above b and is below"),
}


class ScanError(ValueError):
    """A scan the language refuses; `column` (1-based) is where the problem starts."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"column {column}: {message}")
        self.message = message
        self.column = column

    def pointer(self, text: str) -> str:
        """The scan's line with a caret under the column (for a terminal)."""
        line = text.replace("\n", " ").replace("\t", " ")
        return f"{line}\n{' ' * (self.column - 1)}^ {self.message}"


# ---------------------------------------------------------------------------------------
# The tree


@dataclass(frozen=True, slots=True)
class Number:
    value: float
    column: int

    @property
    def kind(self) -> Kind:
        return "number"

    def render(self) -> str:
        return number_text(self.value)


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    column: int

    @property
    def kind(self) -> Kind:
        return "series"

    def render(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Call:
    """A function with its arguments resolved: `series` (none for atr, adx, stoch; two
    for the crossings) and every parameter, defaults filled in."""

    name: str
    series: tuple[Node, ...]
    parameters: tuple[float, ...]
    column: int

    @property
    def kind(self) -> Kind:
        return FUNCTIONS[self.name].result

    def render(self) -> str:
        parts = [one.render() for one in self.series]
        parts += [number_text(value) for value in self.parameters]
        return f"{self.name}({', '.join(parts)})"


@dataclass(frozen=True, slots=True)
class Ago:
    """`operand[bars]`: its value that many bars before the current one."""

    operand: Node
    bars: int
    column: int

    @property
    def kind(self) -> Kind:
        return self.operand.kind

    def render(self) -> str:
        return f"{_operand_text(self.operand)}[{self.bars}]"


@dataclass(frozen=True, slots=True)
class Negative:
    operand: Node
    column: int

    @property
    def kind(self) -> Kind:
        return self.operand.kind

    def render(self) -> str:
        return f"-{_operand_text(self.operand)}"


@dataclass(frozen=True, slots=True)
class Arithmetic:
    operator: ArithmeticOperator
    left: Node
    right: Node
    column: int

    @property
    def kind(self) -> Kind:
        both = (self.left.kind, self.right.kind)
        return "number" if both == ("number", "number") else "series"

    def render(self) -> str:
        return _infix(self.left, self.operator, self.right)


@dataclass(frozen=True, slots=True)
class Comparison:
    operator: ComparisonOperator
    left: Node
    right: Node
    column: int

    @property
    def kind(self) -> Kind:
        return "boolean"

    def render(self) -> str:
        return _infix(self.left, self.operator, self.right)


@dataclass(frozen=True, slots=True)
class Logical:
    operator: Literal["and", "or"]
    left: Node
    right: Node
    column: int

    @property
    def kind(self) -> Kind:
        return "boolean"

    def render(self) -> str:
        return _infix(self.left, self.operator, self.right)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    column: int

    @property
    def kind(self) -> Kind:
        return "boolean"

    def render(self) -> str:
        return f"(not {self.operand.render()})"


Node = Number | Field | Call | Ago | Negative | Arithmetic | Comparison | Logical | Not


@dataclass(frozen=True, slots=True)
class Scan:
    """A parsed scan: its condition, an optional ranking and a limit on the hits."""

    condition: Node
    sort_by: Node | None = None
    descending: bool = True
    limit: int | None = None

    def render(self) -> str:
        """Canonical text: parses back to an equal Scan."""
        text = self.condition.render()
        if self.sort_by is not None:
            text += f" sort by {self.sort_by.render()} {'desc' if self.descending else 'asc'}"
        if self.limit is not None:
            text += f" limit {self.limit}"
        return text

    @property
    def lookback(self) -> int:
        """Bars of history the scan reads to give a value at the current bar."""
        needed = lookback(self.condition)
        if self.sort_by is not None:
            needed = max(needed, lookback(self.sort_by))
        return needed


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Call):
        return node.series
    if isinstance(node, Ago | Negative | Not):
        return (node.operand,)
    if isinstance(node, Arithmetic | Comparison | Logical):
        return (node.left, node.right)
    return ()


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree, parents before their children."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))


def lookback(node: Node) -> int:
    """Bars of history (the current one included) the node reads for one value."""
    if isinstance(node, Number):
        return 0
    if isinstance(node, Field):
        return 2 if node.name in ("change", "pct_change") else 1
    if isinstance(node, Ago):
        return node.bars + lookback(node.operand)
    if isinstance(node, Call):
        inner = max((lookback(one) for one in node.series), default=1)
        if node.name in ("crosses_above", "crosses_below"):
            return inner + 1
        # The bars the function itself reads, the current one included: each of them
        # needs `inner` bars of its input, which overlap but for the first.
        own = int(max(node.parameters, default=1))
        if node.name == "macd_signal":
            own = int(max(node.parameters[:2]) + node.parameters[2] - 1)
        elif node.name == "pct_change":
            own += 1
        elif node.name in ("atr", "adx"):
            own *= 2  # ta's ADX has its first value at bar 2n (ATR's is at n: room to settle)
        return inner + own - 1
    return max((lookback(one) for one in children(node)), default=0)


def _infix(left: Node, operator: str, right: Node) -> str:
    # Always bracketed: the canonical text never leans on precedence.
    return f"({left.render()} {operator} {right.render()})"


def number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)


def _operand_text(node: Node) -> str:
    # A postfix or a minus binds tighter than any operator: its operand is written bare
    # when it is a single token or call, in brackets otherwise.
    text = node.render()
    if isinstance(node, Number | Field | Call | Ago) or text.startswith("("):
        return text
    return f"({text})"
