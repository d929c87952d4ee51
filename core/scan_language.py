"""The scan language: what a trader types to find symbols, e.g.

    rsi(14) < 30 and close > sma(close, 200) sort by rsi(14) asc limit 20

It is read by a tokenizer and a recursive-descent parser into a small tree of the node
types below, and nothing else: there is no `eval`, no `exec`, no attribute access and
no name outside the whitelist (the fields and functions in `FIELDS` and `FUNCTIONS`).
Anything the grammar does not know is refused with a `ScanError` that names the column
(1-based) where the problem starts. Bounds on the text's length, the nesting depth, the
number of nodes and the bars of history an expression reads mean no input can hang the
parser or make the evaluator allocate without limit.

Grammar (keywords and names are case-insensitive):

    scan       := condition [ "sort" "by" arithmetic [ "asc" | "desc" ] ] [ "limit" INT ]
    condition  := conjunct { "or" conjunct }
    conjunct   := negation { "and" negation }
    negation   := "not" negation | comparison
    comparison := arithmetic [ ("<" | "<=" | ">" | ">=" | "==" | "!=") arithmetic ]
    arithmetic := term { ("+" | "-") term }
    term       := unary { ("*" | "/") unary }
    unary      := "-" unary | postfix
    postfix    := primary [ "[" INT "]" ]              (n bars ago)
    primary    := NUMBER | FIELD | NAME "(" [ arguments ] ")" | "(" condition ")"

Every node has a type: a number, a numeric series (a value per symbol per bar) or a
boolean series. Conditions must be boolean, arithmetic and comparisons numeric, and a
function's arguments have the kinds its signature gives: all checked while parsing.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal, cast

from core.scan_syntax import (
    COMPARISONS,
    FIELDS,
    FUNCTIONS,
    KEYWORDS,
    MAX_DEPTH,
    MAX_LIMIT,
    MAX_LOOKBACK,
    MAX_NODES,
    MAX_NUMBER,
    MAX_TEXT_LENGTH,
    MAX_WINDOW,
    Ago,
    Arithmetic,
    ArithmeticOperator,
    Call,
    Comparison,
    ComparisonOperator,
    Field,
    Logical,
    Negative,
    Node,
    Not,
    Number,
    Scan,
    ScanError,
    Signature,
    number_text,
)

# ---------------------------------------------------------------------------------------
# Tokens


@dataclass(frozen=True, slots=True)
class Token:
    type: Literal["number", "name", "op", "end"]
    text: str
    column: int


_OPERATORS = ("<=", ">=", "==", "!=", "<", ">", "+", "-", "*", "/", "(", ")", ",", "[", "]")
_REFUSED = {
    ".": "attribute access is not part of the scan language",
    "'": "strings are not part of the scan language",
    '"': "strings are not part of the scan language",
    "=": "write == to compare",
    "!": "write 'not' for a negation, != for a difference",
    "&": "write 'and'",
    "|": "write 'or'",
    "%": "% is not an operator: pct_change gives percent changes",
    "^": "^ is not an operator",
    ":": ": is not part of the scan language",
    "{": "braces are not part of the scan language",
    "}": "braces are not part of the scan language",
    "@": "@ is not part of the scan language",
    "#": "comments are not part of the scan language",
    "\\": "a backslash is not part of the scan language",
    ";": "one scan at a time: ; is not part of the scan language",
}


def tokenize(text: str) -> list[Token]:
    """The scan's tokens, ending with an "end" token; ScanError at the first character
    the language has no use for."""
    if len(text) > MAX_TEXT_LENGTH:
        raise ScanError(f"a scan is at most {MAX_TEXT_LENGTH:,} characters, this one is "
                        f"{len(text):,}", MAX_TEXT_LENGTH + 1)
    tokens: list[Token] = []
    index, length = 0, len(text)
    while index < length:
        char = text[index]
        column = index + 1
        if char in " \t\r\n":
            index += 1
            continue
        if char.isascii() and (char.isdigit() or (char == "." and index + 1 < length
                                                  and text[index + 1].isdigit())):
            end = index
            while end < length and text[end].isascii() and text[end].isdigit():
                end += 1
            if end < length and text[end] == ".":
                end += 1
                while end < length and text[end].isascii() and text[end].isdigit():
                    end += 1
            if end < length and text[end].isascii() and (text[end].isalpha() or text[end] == "_"):
                raise ScanError(f"a number runs into letters: {text[index:end + 1]!r}", column)
            tokens.append(Token("number", text[index:end], column))
            index = end
            continue
        if char.isascii() and (char.isalpha() or char == "_"):
            end = index
            while end < length and text[end].isascii() and (text[end].isalnum()
                                                            or text[end] == "_"):
                end += 1
            tokens.append(Token("name", text[index:end].lower(), column))
            index = end
            continue
        if text.startswith("**", index):
            raise ScanError("** is not an operator", column)
        operator = next((op for op in _OPERATORS if text.startswith(op, index)), None)
        if operator is not None:
            tokens.append(Token("op", operator, column))
            index += len(operator)
            continue
        reason = _REFUSED.get(char, f"{char!r} is not part of the scan language")
        raise ScanError(reason, column)
    tokens.append(Token("end", "", length + 1))
    return tokens


# ---------------------------------------------------------------------------------------
# The parser


def parse(text: str) -> Scan:
    """The scan `text` describes; ScanError (with its column) for anything else."""
    return _Parser(text).scan()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.position = 0
        self.depth = 0
        self.nodes = 0

    # -------------------------------------------------------------- token helpers

    @property
    def current(self) -> Token:
        return self.tokens[self.position]

    def advance(self) -> Token:
        token = self.tokens[self.position]
        if token.type != "end":
            self.position += 1
        return token

    def at(self, text: str) -> bool:
        token = self.current
        return token.type in ("op", "name") and token.text == text

    def expect(self, text: str, what: str) -> Token:
        if not self.at(text):
            raise self.unexpected(what)
        return self.advance()

    def unexpected(self, wanted: str) -> ScanError:
        token = self.current
        if token.type == "end":
            found = "the end of the scan" if self.text.strip() else "an empty scan"
        elif token.type == "name" and token.text in KEYWORDS:
            found = f"the keyword {token.text!r}"
        else:
            found = repr(token.text)
        return ScanError(f"expected {wanted}, found {found}", token.column)

    def enter(self, column: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ScanError(f"the scan nests deeper than {MAX_DEPTH} levels", column)

    def counted(self, node: Node) -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ScanError(f"the scan has more than {MAX_NODES} parts", node.column)
        return node

    # -------------------------------------------------------------- grammar

    def scan(self) -> Scan:
        condition = self.condition()
        _require(condition, "boolean", "the scan must be a condition (a comparison, a "
                 "crossing, or conditions joined with and/or)")
        sort_by: Node | None = None
        descending = True
        limit: int | None = None
        if self.at("sort"):
            self.advance()
            self.expect("by", "'by' after 'sort'")
            sort_by = self.arithmetic()
            _require(sort_by, "series", "sort by a value, such as rsi(14) or volume")
            if self.at("asc") or self.at("desc"):
                descending = self.advance().text == "desc"
        if self.at("limit"):
            self.advance()
            limit = self.whole_number(1, MAX_LIMIT, "the limit")
        if self.current.type != "end":
            raise self.unexpected("and, or, 'sort by' or 'limit'" if sort_by is None
                                  and limit is None else "the end of the scan")
        result = Scan(condition, sort_by, descending, limit)
        if result.lookback > MAX_LOOKBACK:
            raise ScanError(f"the scan reads {result.lookback:,} bars of history; at most "
                            f"{MAX_LOOKBACK:,}", 1)
        return result

    def condition(self) -> Node:
        left = self.conjunct()
        while self.at("or"):
            token = self.advance()
            right = self.conjunct()
            left = self.logical("or", left, right, token.column)
        return left

    def conjunct(self) -> Node:
        left = self.negation()
        while self.at("and"):
            token = self.advance()
            right = self.negation()
            left = self.logical("and", left, right, token.column)
        return left

    def logical(self, operator: Literal["and", "or"], left: Node, right: Node,
                column: int) -> Node:
        for side in (left, right):
            _require(side, "boolean", f"'{operator}' joins conditions; this is a value "
                     "(compare it with something)")
        return self.counted(Logical(operator, left, right, column))

    def negation(self) -> Node:
        if self.at("not"):
            token = self.advance()
            self.enter(token.column)
            operand = self.negation()
            self.depth -= 1
            _require(operand, "boolean", "'not' takes a condition")
            return self.counted(Not(operand, token.column))
        return self.comparison()

    def comparison(self) -> Node:
        left = self.arithmetic()
        token = self.current
        if token.type == "op" and token.text in COMPARISONS:
            self.advance()
            right = self.arithmetic()
            for side in (left, right):
                _require(side, "series", f"'{token.text}' compares values, not conditions")
            if left.kind == "number" and right.kind == "number":
                raise ScanError("this compares two numbers: one side should be a field or "
                                "an indicator", token.column)
            if self.current.type == "op" and self.current.text in COMPARISONS:
                raise ScanError("comparisons do not chain: join them with 'and'",
                                self.current.column)
            return self.counted(Comparison(cast(ComparisonOperator, token.text), left, right,
                                           token.column))
        return left

    def arithmetic(self) -> Node:
        left = self.term()
        while self.current.type == "op" and self.current.text in ("+", "-"):
            token = self.advance()
            right = self.term()
            left = self.arithmetic_node(token, left, right)
        return left

    def term(self) -> Node:
        left = self.unary()
        while self.current.type == "op" and self.current.text in ("*", "/"):
            token = self.advance()
            right = self.unary()
            left = self.arithmetic_node(token, left, right)
        return left

    def arithmetic_node(self, token: Token, left: Node, right: Node) -> Node:
        for side in (left, right):
            _require(side, "series", f"'{token.text}' works on values, not conditions")
        if token.text == "/" and isinstance(right, Number) and right.value == 0:
            raise ScanError("division by zero", right.column)
        return self.counted(Arithmetic(cast(ArithmeticOperator, token.text), left, right,
                                       token.column))

    def unary(self) -> Node:
        if self.current.type == "op" and self.current.text == "-":
            token = self.advance()
            self.enter(token.column)
            operand = self.unary()
            self.depth -= 1
            _require(operand, "series", "'-' works on values, not conditions")
            if isinstance(operand, Number):
                return self.counted(Number(-operand.value, token.column))
            return self.counted(Negative(operand, token.column))
        if self.current.type == "op" and self.current.text == "+":
            raise ScanError("a leading + is not needed", self.current.column)
        return self.postfix()

    def postfix(self) -> Node:
        node = self.primary()
        if self.at("["):
            token = self.advance()
            if node.kind == "number":
                raise ScanError("[n] means n bars ago: it follows a field or an indicator",
                                token.column)
            bars = self.whole_number(0, MAX_WINDOW, "the bars ago")
            self.expect("]", "']'")
            if self.at("["):
                raise ScanError("one [n] is enough: add the bars up", self.current.column)
            node = self.counted(Ago(node, bars, token.column)) if bars else node
        return node

    def primary(self) -> Node:
        token = self.current
        if token.type == "number":
            self.advance()
            value = float(token.text)
            if value > MAX_NUMBER:
                raise ScanError(f"{token.text} is larger than any price or volume",
                                token.column)
            return self.counted(Number(value, token.column))
        if token.type == "op" and token.text == "(":
            self.advance()
            self.enter(token.column)
            inner = self.condition()
            self.depth -= 1
            self.expect(")", "')'")
            return inner
        if token.type == "name":
            if token.text in KEYWORDS:
                raise self.unexpected("a value or a condition")
            self.advance()
            if self.at("("):
                return self.call(token)
            if token.text in FIELDS:
                return self.counted(Field(token.text, token.column))
            if token.text in FUNCTIONS:
                raise ScanError(f"{token.text} is a function: "
                                f"{FUNCTIONS[token.text].usage(token.text)}", token.column)
            raise ScanError(_unknown_name(token.text), token.column)
        if token.type == "op" and token.text == "[":
            raise ScanError("[n] means n bars ago: it follows a field or an indicator",
                            token.column)
        raise self.unexpected("a value or a condition")

    def call(self, name: Token) -> Node:
        signature = FUNCTIONS.get(name.text)
        if signature is None:
            if name.text in FIELDS:
                raise ScanError(f"{name.text} is a field, not a function", name.column)
            raise ScanError(_unknown_name(name.text), name.column)
        opening = self.expect("(", "'('")
        self.enter(opening.column)
        arguments: list[Node] = []
        if not self.at(")"):
            arguments.append(self.argument())
            while self.at(","):
                self.advance()
                arguments.append(self.argument())
        closing = self.expect(")", "')' or ','")
        self.depth -= 1
        return self.counted(_resolve(name, signature, arguments, closing.column))

    def argument(self) -> Node:
        # An argument is a value: a series or a number. A condition is read whole, to
        # say so, rather than stopping at its operator.
        node = self.condition()
        _require(node, "series", "a function takes values, not conditions")
        return node

    def whole_number(self, low: int, high: int, what: str) -> int:
        token = self.current
        if token.type != "number" or "." in token.text:
            raise self.unexpected(f"a whole number for {what}")
        self.advance()
        value = int(token.text)
        if not low <= value <= high:
            raise ScanError(f"{what} must be from {low} to {high:,}, not {value:,}",
                            token.column)
        return value


def _require(node: Node, kind: Literal["series", "boolean"], message: str) -> None:
    # "series" accepts numbers too: a constant is a value wherever a series is.
    ok = node.kind == "boolean" if kind == "boolean" else node.kind != "boolean"
    if not ok:
        raise ScanError(message, node.column)


def _resolve(name: Token, signature: Signature, arguments: list[Node],
             closing_column: int) -> Call:
    usage = signature.usage(name.text)
    if signature.series_count == 2:
        if len(arguments) != 2:
            raise ScanError(f"{name.text} takes two values: {usage}", name.column)
        return Call(name.text, tuple(arguments), (), name.column)
    series: list[Node] = []
    rest = arguments
    if signature.series_count == 1 and arguments and arguments[0].kind == "series":
        series, rest = [arguments[0]], arguments[1:]
    elif signature.series_count == 1:
        if signature.source is None:
            column = arguments[0].column if arguments else closing_column
            raise ScanError(f"{name.text} needs a series first: {usage}", column)
        series = [Field(signature.source, name.column)]
    if signature.series_count == 0 and arguments and arguments[0].kind == "series":
        raise ScanError(f"{name.text} reads high, low and close itself: {usage}",
                        arguments[0].column)
    if len(rest) > len(signature.parameters):
        raise ScanError(f"too many arguments: {usage}", rest[len(signature.parameters)].column)
    values: list[float] = []
    for index, parameter in enumerate(signature.parameters):
        if index < len(rest):
            argument = rest[index]
            if not isinstance(argument, Number):
                raise ScanError(f"{parameter.name} must be a number: {usage}", argument.column)
            value, column = argument.value, argument.column
        elif parameter.default is None:
            raise ScanError(f"{name.text} needs {parameter.name}: {usage}", closing_column)
        else:
            value, column = parameter.default, closing_column
        if parameter.whole and not float(value).is_integer():
            raise ScanError(f"{parameter.name} must be a whole number of bars, not "
                            f"{number_text(value)}", column)
        if not parameter.low <= value <= parameter.high:
            raise ScanError(f"{parameter.name} must be from {number_text(parameter.low)} to "
                            f"{number_text(parameter.high)}, not {number_text(value)}",
                            column)
        values.append(float(value))
    if name.text in ("macd", "macd_signal") and values[0] >= values[1]:
        raise ScanError(f"fast ({number_text(values[0])}) must be shorter than slow "
                        f"({number_text(values[1])})", closing_column)
    return Call(name.text, tuple(series), tuple(values), name.column)


def _unknown_name(name: str) -> str:
    if name.startswith("_"):
        return f"{name!r} is not a field or a function (names with _ in front are never)"
    if name in ("lambda", "import", "for", "in", "if", "else", "is", "eval", "exec"):
        return f"{name!r} is not part of the scan language"
    close = difflib.get_close_matches(name.lower(), [*FIELDS, *FUNCTIONS], n=1, cutoff=0.7)
    if close:
        return f"unknown name {name!r}: did you mean {close[0]}?"
    known = ", ".join(FIELDS)
    return (f"unknown name {name!r}: the fields are {known}; the functions "
            f"{', '.join(FUNCTIONS)}")
