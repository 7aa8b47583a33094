"""CEL source -> AST: a lark LALR parser over ``cel.lark`` and a transformer to :mod:`nodes`."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from .errors import CelCompileError
from .nodes import (
    And,
    Binary,
    Call,
    Comprehension,
    Cond,
    Has,
    Ident,
    Index,
    ListLit,
    Literal,
    MapLit,
    Neg,
    Node,
    Not,
    Or,
    Select,
    children,
)
from .values import INT_MAX, INT_MIN, UINT_MAX, UInt

__all__ = ["MAX_DEPTH", "MAX_LENGTH", "parse"]

MAX_LENGTH = 10_000  # characters in one condition
MAX_DEPTH = 100  # nesting of the AST (keeps compilation and evaluation away from Python's recursion limit)

RESERVED = frozenset(
    {"as", "break", "const", "continue", "else", "for", "function", "if", "import", "let", "loop"}
    | {"package", "namespace", "return", "var", "void", "while"}
)
_MACROS_1 = frozenset({"all", "exists", "exists_one", "filter"})


@cache
def _lark() -> Lark:
    grammar = (Path(__file__).parent / "cel.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", maybe_placeholders=False)


class _Fail(Exception):
    def __init__(self, reason: str, column: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.column = column


def _col(tok: Token) -> int:
    return (tok.start_pos or 0) + 1


_SIMPLE_ESCAPES = {
    "a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11,
    "\\": 92, "'": 39, '"': 34, "`": 96, "?": 63,
}  # fmt: skip


def _unescape(body: str, is_bytes: bool, column: int) -> list[int]:
    """Code points (or, for bytes, byte values and code points to encode) of an escaped literal body.

    Returns a list of ints; for bytes, values >= 0 are raw bytes and negative values -cp are code points.
    """
    out: list[int] = []
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch != "\\":
            out.append(-ord(ch) if is_bytes else ord(ch))
            i += 1
            continue
        if i + 1 >= n:
            raise _Fail("invalid escape at the end of a string", column)
        e = body[i + 1]
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
            i += 2
        elif e in "xX" and re.fullmatch(r"[0-9a-fA-F]{2}", body[i + 2 : i + 4]):
            out.append(int(body[i + 2 : i + 4], 16))
            i += 4
        elif e in "0123" and re.fullmatch(r"[0-7]{3}", body[i + 1 : i + 4]):
            out.append(int(body[i + 1 : i + 4], 8))
            i += 4
        elif e in "uU":
            width = 4 if e == "u" else 8
            digits = body[i + 2 : i + 2 + width]
            if not re.fullmatch(f"[0-9a-fA-F]{{{width}}}", digits):
                raise _Fail(f"invalid \\{e} escape in a string", column)
            cp = int(digits, 16)
            if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                raise _Fail(f"invalid code point \\{e}{digits}", column)
            out.append(-cp if is_bytes else cp)
            i += 2 + width
        else:
            raise _Fail(f"invalid escape '\\{e}' in a string", column)
    return out


def _string_literal(tok: Token) -> str | bytes:
    text = str(tok)
    column = _col(tok)
    prefix_len = 0
    while text[prefix_len] not in "'\"":
        prefix_len += 1
    prefix = text[:prefix_len].lower()
    quote = 3 if text[prefix_len : prefix_len + 3] in ('"""', "'''") else 1
    body = text[prefix_len + quote : len(text) - quote]
    is_bytes, is_raw = "b" in prefix, "r" in prefix
    if is_raw:
        return body.encode("utf-8") if is_bytes else body
    units = _unescape(body, is_bytes, column)
    if not is_bytes:
        try:
            return "".join(map(chr, units))
        except ValueError:
            raise _Fail("invalid character in a string", column) from None
    raw = bytearray()
    for u in units:
        raw.extend(chr(-u).encode("utf-8") if u < 0 else bytes([u]))
    return bytes(raw)


def _int(tok: Token) -> int:
    text = str(tok).rstrip("uU")
    return int(text, 16) if text[:2].lower() == "0x" else int(text, 10)


class _ToAst(Transformer[Token, Node]):
    # ---- literals ----
    def int_(self, c: list[Token]) -> Node:
        return Literal(_col(c[0]), _int(c[0]))  # range checked after folding a leading minus

    def uint_(self, c: list[Token]) -> Node:
        v = _int(c[0])
        if v > UINT_MAX:
            raise _Fail("uint literal out of range", _col(c[0]))
        return Literal(_col(c[0]), UInt(v))

    def float_(self, c: list[Token]) -> Node:
        return Literal(_col(c[0]), float(str(c[0])))

    def string_(self, c: list[Token]) -> Node:
        return Literal(_col(c[0]), _string_literal(c[0]))

    def true_(self, c: list[Token]) -> Node:
        return Literal(_col(c[0]), True)

    def false_(self, c: list[Token]) -> Node:
        return Literal(_col(c[0]), False)

    def null_(self, c: list[Token]) -> Node:
        return Literal(_col(c[0]), None)

    # ---- names, members, calls ----
    def ident(self, c: list[Token]) -> Node:
        tok = c[-1]
        _check_name(tok)
        return Ident(_col(tok), str(tok), absolute=len(c) == 2)

    def select(self, c: list[Any]) -> Node:
        # a field name may be a reserved word ({'return': 1}.return) or quoted in backticks
        operand, tok = c[0], c[2]
        name = str(tok)
        return Select(_col(tok), operand, name[1:-1] if tok.type == "QUOTED_IDENT" else name)

    def index(self, c: list[Any]) -> Node:
        return Index(_col(c[1]), c[0], c[2])

    def method(self, c: list[Any]) -> Node:
        target, tok, args = c[0], c[2], c[4]
        return _expand_method(target, str(tok), args, _col(tok))

    def call(self, c: list[Any]) -> Node:
        tok, args = c[0], c[2]
        name, col = str(tok), _col(tok)
        if name == "has":
            if len(args) != 1 or not isinstance(args[0], Select):
                raise _Fail("has() takes one field selection, e.g. has(profile.email)", col)
            return Has(col, args[0].operand, args[0].field)
        _check_name(tok)
        return Call(col, name, None, tuple(args))

    def paren(self, c: list[Any]) -> Node:
        node: Node = c[1]
        return node

    def args(self, c: list[Node]) -> list[Node]:
        return list(c)

    def list_(self, c: list[Any]) -> Node:
        return ListLit(_col(c[0]), tuple(c[1]))

    def map_inits(self, c: list[tuple[Node, Node]]) -> list[tuple[Node, Node]]:
        return list(c)

    def map_init(self, c: list[Any]) -> tuple[Node, Node]:
        return (c[0], c[2])

    def map_(self, c: list[Any]) -> Node:
        return MapLit(_col(c[0]), tuple(c[1]))

    # ---- operators ----
    def cond(self, c: list[Any]) -> Node:
        return Cond(_col(c[1]), c[0], c[2], c[3])

    def or_(self, c: list[Any]) -> Node:
        left, right = c[0], c[2]
        terms = (left.terms if isinstance(left, Or) else (left,)) + (right,)
        return Or(left.col if isinstance(left, Or) else _col(c[1]), terms)

    def and_(self, c: list[Any]) -> Node:
        left, right = c[0], c[2]
        terms = (left.terms if isinstance(left, And) else (left,)) + (right,)
        return And(left.col if isinstance(left, And) else _col(c[1]), terms)

    def binop(self, c: list[Any]) -> Node:
        return Binary(_col(c[1]), str(c[1]), c[0], c[2])

    def not_(self, c: list[Any]) -> Node:
        node: Node = c[-1]
        for tok in reversed(c[:-1]):
            node = Not(_col(tok), node)
        return node

    def neg(self, c: list[Any]) -> Node:
        node: Node = c[-1]
        for tok in reversed(c[:-1]):
            if isinstance(node, Literal) and type(node.value) in (int, float):
                node = Literal(_col(tok), -node.value)  # fold, so that -9223372036854775808 is in range
            else:
                node = Neg(_col(tok), node)
        return node


def _check_name(tok: Token) -> None:
    if str(tok) in RESERVED:
        raise _Fail(f"'{tok}' is a reserved word", _col(tok))


def _expand_method(target: Node, name: str, args: list[Node], col: int) -> Node:
    """Macros (x.all(v, p) ...) become Comprehension nodes; other methods stay calls."""
    if name in _MACROS_1 or name == "map":
        if not args or not isinstance(args[0], Ident):
            if name in _MACROS_1 or len(args) in (2, 3):
                raise _Fail(f"{name}() needs a variable name as first argument, e.g. x.{name}(e, e > 0)", col)
        elif len(args) == 2 and name in _MACROS_1:
            return Comprehension(col, name, target, args[0].name, args[1], None)
        elif name == "map" and len(args) == 2:
            return Comprehension(col, "map", target, args[0].name, None, args[1])
        elif name == "map" and len(args) == 3:
            return Comprehension(col, "map", target, args[0].name, args[1], args[2])
        else:
            raise _Fail(f"wrong number of arguments to the {name}() macro", col)
    return Call(col, name, target, tuple(args))


def _check_ranges(node: Node, source: str, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise CelCompileError(
            f"expression nested too deeply (more than {MAX_DEPTH} levels)", node.col, source
        )
    if isinstance(node, Literal):
        v = node.value
        if type(v) is int and not INT_MIN <= v <= INT_MAX:
            raise CelCompileError("int literal out of range", node.col, source)
        return
    for child in children(node):
        _check_ranges(child, source, depth + 1)


def parse(source: str) -> Node:
    """Parse ``source`` into an AST; raises CelCompileError with the column of the problem."""
    if len(source) > MAX_LENGTH:
        raise CelCompileError(f"condition longer than {MAX_LENGTH} characters", 1, source)
    if not source.strip():
        raise CelCompileError("empty condition", 1, source)
    try:
        tree = _lark().parse(source)
    except UnexpectedCharacters as exc:
        pos = exc.pos_in_stream or 0
        raise CelCompileError(f"unexpected character {source[pos]!r}", pos + 1, source) from None
    except UnexpectedToken as exc:
        tok = exc.token
        if tok.type == "$END":
            raise CelCompileError("unexpected end of condition", len(source.rstrip()) + 1, source) from None
        raise CelCompileError(f"unexpected {str(tok)!r}", _col(tok), source) from None
    except UnexpectedEOF:
        raise CelCompileError("unexpected end of condition", len(source.rstrip()) + 1, source) from None
    except UnexpectedInput as exc:  # pragma: no cover - the three above are the concrete kinds
        raise CelCompileError("syntax error", (exc.pos_in_stream or 0) + 1, source) from None
    except RecursionError:
        raise CelCompileError("expression nested too deeply", 1, source) from None
    try:
        node = _ToAst().transform(tree) if isinstance(tree, Tree) else tree
    except VisitError as exc:
        orig = exc.orig_exc
        if isinstance(orig, _Fail):
            raise CelCompileError(orig.reason, orig.column, source) from None
        raise
    except RecursionError:
        raise CelCompileError("expression nested too deeply", 1, source) from None
    if not isinstance(node, Node):  # pragma: no cover
        raise CelCompileError("not an expression", 1, source)
    _check_ranges(node, source)
    return node
