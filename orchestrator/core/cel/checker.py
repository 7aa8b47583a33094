"""Static checks before compilation: known variables and functions, and obviously wrong types.

Values whose type cannot be known statically (``dyn``: event properties, profile attributes, macro
variables over dynamic lists) pass the checker and are checked at runtime instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from .celtypes import CelType
from .errors import CelCompileError
from .functions import FUNCTIONS
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
)
from .values import TYPE_DENOTATIONS, Duration, Timestamp, TypeValue, UInt

__all__ = ["HISTORY_FUNCTIONS", "Checker"]

T = CelType
HISTORY_FUNCTIONS = frozenset({"seen", "count"})
_ORDERED = frozenset({"int", "uint", "double", "string", "bytes", "bool", "timestamp", "duration"})


def literal_type(v: object) -> CelType:
    t = type(v)
    if t is bool:
        return T.BOOL
    if t is int:
        return T.INT
    if t is UInt:
        return T.UINT
    if t is float:
        return T.DOUBLE
    if t is str:
        return T.STRING
    if t is bytes:
        return T.BYTES
    if t is Timestamp:
        return T.TIMESTAMP
    if t is Duration:
        return T.DURATION
    if t is TypeValue:
        return T.TYPE
    return T.NULL


def _fits(actual: CelType, param: CelType) -> bool:
    if actual.is_dyn or param.is_dyn:
        return True
    if actual.name != param.name:
        return False
    return all(_fits(a, p) for a, p in zip(actual.params, param.params, strict=False))


def _join(types: list[CelType]) -> CelType:
    if not types:
        return T.DYN
    first = types[0]
    return first if all(t == first for t in types) else T.DYN


class Checker:
    """Type-checks one AST against the declared variables; remembers which variables it uses."""

    def __init__(self, source: str, variables: Mapping[str, CelType]) -> None:
        self.source = source
        self.variables = variables
        self.referenced: set[str] = set()
        self.lenient = False  # True: type errors and unbound names are left to the runtime

    def type_fail(self, reason: str, node: Node) -> CelType:
        """A static type error: raised, unless lenient (then the node's type becomes dyn)."""
        if self.lenient:
            return T.DYN
        raise self.fail(reason, node)

    def fail(self, reason: str, node: Node) -> CelCompileError:
        return CelCompileError(reason, node.col, self.source)

    def check(self, node: Node, scope: Mapping[str, CelType] | None = None) -> CelType:
        scope = scope or {}
        method = getattr(self, "_" + type(node).__name__.lower())
        result: CelType = method(node, scope)
        return result

    # ------------------------------------------------------------ leaves
    def _literal(self, node: Literal, scope: Mapping[str, CelType]) -> CelType:
        return literal_type(node.value)

    def _ident(self, node: Ident, scope: Mapping[str, CelType]) -> CelType:
        if node.name in scope and not node.absolute:
            return scope[node.name]
        if node.name in self.variables:
            self.referenced.add(node.name)
            return self.variables[node.name]
        if node.name in TYPE_DENOTATIONS:  # int, string, list ... as values (type(1) == int)
            return T.TYPE
        if self.lenient:  # (unchecked: an unbound name is an error when evaluated, as the spec says)
            return T.DYN
        known = sorted({*self.variables, *scope})
        close = difflib.get_close_matches(node.name, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known) or 'none'})"
        raise self.fail(f"unknown variable '{node.name}'{hint}", node)

    # ------------------------------------------------------------ members
    def _select(self, node: Select, scope: Mapping[str, CelType]) -> CelType:
        t = self.check(node.operand, scope)
        return self._field_type(t, node.field, node)

    def _has(self, node: Has, scope: Mapping[str, CelType]) -> CelType:
        t = self.check(node.operand, scope)
        self._field_type(t, node.field, node)
        return T.BOOL

    def _field_type(self, t: CelType, field: str, node: Node) -> CelType:
        if t.is_dyn:
            return T.DYN
        if t.name == "map":
            if not _fits(T.STRING, t.elem):
                return self.type_fail(f"cannot select '.{field}' from a map with {t.elem} keys", node)
            return t.value
        return self.type_fail(f"type '{t}' does not support field selection ('.{field}')", node)

    def _index(self, node: Index, scope: Mapping[str, CelType]) -> CelType:
        t = self.check(node.operand, scope)
        k = self.check(node.index, scope)
        if t.is_dyn:
            return T.DYN
        if t.name == "list":
            if not (k.is_dyn or k.name in ("int", "uint")):
                return self.type_fail(f"list index must be an int, not {k}", node)
            return t.elem
        if t.name == "map":
            if not (_fits(k, t.elem) or (k.is_numeric and t.elem.is_numeric)):
                return self.type_fail(f"map key must be {t.elem}, not {k}", node)
            return t.value
        return self.type_fail(f"type '{t}' cannot be indexed", node)

    # ------------------------------------------------------------ literals of lists and maps
    def _listlit(self, node: ListLit, scope: Mapping[str, CelType]) -> CelType:
        return T.list_of(_join([self.check(i, scope) for i in node.items]))

    def _maplit(self, node: MapLit, scope: Mapping[str, CelType]) -> CelType:
        keys, values = [], []
        for k, v in node.entries:
            kt = self.check(k, scope)
            if not (kt.is_dyn or kt.name in ("int", "uint", "string", "bool")):
                self.type_fail(f"map keys must be int, uint, string or bool, not {kt}", k)
            keys.append(kt)
            values.append(self.check(v, scope))
        return T.map_of(_join(keys), _join(values))

    # ------------------------------------------------------------ logic
    def _bool_operand(self, node: Node, scope: Mapping[str, CelType], what: str) -> None:
        t = self.check(node, scope)
        if not (t.is_dyn or t == T.BOOL):
            self.type_fail(f"{what} needs a bool, not {t}", node)

    def _and(self, node: And, scope: Mapping[str, CelType]) -> CelType:
        for term in node.terms:
            self._bool_operand(term, scope, "'&&'")
        return T.BOOL

    def _or(self, node: Or, scope: Mapping[str, CelType]) -> CelType:
        for term in node.terms:
            self._bool_operand(term, scope, "'||'")
        return T.BOOL

    def _not(self, node: Not, scope: Mapping[str, CelType]) -> CelType:
        self._bool_operand(node.operand, scope, "'!'")
        return T.BOOL

    def _cond(self, node: Cond, scope: Mapping[str, CelType]) -> CelType:
        self._bool_operand(node.test, scope, "the condition of '?:'")
        return _join([self.check(node.then, scope), self.check(node.orelse, scope)])

    # ------------------------------------------------------------ operators
    def _neg(self, node: Neg, scope: Mapping[str, CelType]) -> CelType:
        t = self.check(node.operand, scope)
        if t.is_dyn or t.name in ("int", "double", "duration"):
            return t
        return self.type_fail(f"no matching overload for '-' applied to ({t})", node)

    def _binary(self, node: Binary, scope: Mapping[str, CelType]) -> CelType:
        lt, rt = self.check(node.left, scope), self.check(node.right, scope)
        op = node.op
        if op == "in":
            if not (rt.is_dyn or rt.name in ("list", "map")):
                return self.type_fail(f"'in' needs a list or a map on its right, not {rt}", node)
            return T.BOOL
        if op in ("==", "!="):
            if (
                lt.is_dyn
                or rt.is_dyn
                or T.NULL in (lt, rt)
                or _fits(lt, rt)
                or (lt.is_numeric and rt.is_numeric)
            ):
                return T.BOOL
            return self.type_fail(f"comparing {lt} with {rt} with '{op}' is always {op == '!='}", node)
        if lt.is_dyn or rt.is_dyn:
            return T.BOOL if op in ("<", "<=", ">", ">=") else self._arith_dyn(op, lt, rt)
        if op in ("<", "<=", ">", ">="):
            same = lt.name == rt.name and lt.name in _ORDERED
            if same or (lt.is_numeric and rt.is_numeric):
                return T.BOOL
        else:
            result = self._arith(op, lt, rt)
            if result is not None:
                return result
        return self.type_fail(f"no matching overload for '{op}' applied to ({lt}, {rt})", node)

    @staticmethod
    def _arith_dyn(op: str, lt: CelType, rt: CelType) -> CelType:
        known = rt if lt.is_dyn else lt
        if known.name in ("int", "uint", "double", "string", "bytes") and not (
            op != "+" and known.name == "string"
        ):
            return known
        return T.DYN

    @staticmethod
    def _arith(op: str, lt: CelType, rt: CelType) -> CelType | None:
        if lt.name == rt.name:
            name = lt.name
            if name in ("int", "uint") or (name == "double" and op != "%"):
                return lt
            if op == "+" and name in ("string", "bytes"):
                return lt
            if op == "+" and name == "list":
                return lt if lt == rt else T.DYN_LIST
            if name == "duration" and op in ("+", "-"):
                return T.DURATION
            if name == "timestamp" and op == "-":
                return T.DURATION
            return None
        pair = (lt.name, rt.name)
        if op == "+" and pair in (("timestamp", "duration"), ("duration", "timestamp")):
            return T.TIMESTAMP
        if op == "-" and pair == ("timestamp", "duration"):
            return T.TIMESTAMP
        return None

    # ------------------------------------------------------------ calls and macros
    def _call(self, node: Call, scope: Mapping[str, CelType]) -> CelType:
        if node.target is None and node.name in HISTORY_FUNCTIONS:
            return self._history(node, scope)
        args = [self.check(a, scope) for a in ((node.target,) if node.target else ()) + node.args]
        fn = FUNCTIONS.get((node.name, node.target is not None))
        if fn is None and self.lenient:
            return T.DYN
        if fn is None:
            kind = "method" if node.target is not None else "function"
            names = sorted({n for n, m in FUNCTIONS if m == (node.target is not None)} | HISTORY_FUNCTIONS)
            close = difflib.get_close_matches(node.name, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise self.fail(f"unknown {kind} '{node.name}'{hint}", node)
        results = [
            res for params, res in fn.overloads if len(params) == len(args) and all(map(_fits, args, params))
        ]
        if not results:
            shown = ", ".join(map(str, args))
            return self.type_fail(f"no matching overload for '{node.name}' applied to ({shown})", node)
        return _join(results)

    def _history(self, node: Call, scope: Mapping[str, CelType]) -> CelType:
        if "history" not in self.variables:
            raise self.fail(f"{node.name}() needs the 'history' variable, which is not declared here", node)
        if len(node.args) not in (2, 3):
            raise self.fail(f"{node.name}() takes (type, within) or (type, within, where)", node)
        t = self.check(node.args[0], scope)
        if not (t.is_dyn or t == T.STRING):
            self.type_fail(f"the event type given to {node.name}() must be a string, not {t}", node.args[0])
        within = node.args[1]
        if not (
            isinstance(within, Call)
            and within.name == "duration"
            and within.target is None
            and len(within.args) == 1
            and isinstance(within.args[0], Literal)
            and type(within.args[0].value) is str
        ):
            raise self.fail(
                f'the second argument of {node.name}() must be a literal duration, e.g. duration("24h")',
                within,
            )
        if len(node.args) == 3:
            where = node.args[2]
            if not isinstance(where, MapLit):
                raise self.fail(
                    f"the third argument of {node.name}() must be a map literal,"
                    ' e.g. {"campaign": "spring"}',
                    where,
                )
            for k, v in where.entries:
                if not (isinstance(k, Literal) and type(k.value) is str):
                    raise self.fail(f"the keys of {node.name}()'s where-map must be string literals", k)
                self.check(v, scope)
        self.referenced.update(("history", "now"))
        return T.BOOL if node.name == "seen" else T.INT

    def _comprehension(self, node: Comprehension, scope: Mapping[str, CelType]) -> CelType:
        t = self.check(node.target, scope)
        if not (t.is_dyn or t.name in ("list", "map")):
            self.type_fail(f"{node.macro}() works on a list or a map, not {t}", node)
        # (the macro's variable may hide a variable or an outer macro's of the same name: the spec)
        inner = {**scope, node.var: t.elem}
        if node.predicate is not None:
            self._bool_operand(node.predicate, inner, f"{node.macro}()")
        if node.macro == "map":
            assert node.transform is not None
            return T.list_of(self.check(node.transform, inner))
        if node.macro == "filter":
            return T.list_of(t.elem) if t.name == "list" else T.list_of(t.elem if t.name == "map" else T.DYN)
        return T.BOOL
