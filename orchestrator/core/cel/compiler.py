"""AST -> Python closures. Each node becomes ``f(activation) -> value``; errors are CelEvaluationError.

Nothing here evaluates Python source: the closures only call the fixed operations of :mod:`ops` and
:mod:`functions`, so a condition can do no more than CEL's grammar lets it express.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import Any

from .cost import BUDGET, over_budget
from .errors import CelCompileError, CelEvaluationError
from .functions import FUNCTIONS, compile_regex
from .history import history_call, now_ms
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
from .ops import BINARY, ge, gt, index, le, lt, neg, no_overload, select
from .values import TYPE_DENOTATIONS, Duration, Timestamp, TypeValue, UInt, parse_duration, parse_timestamp

__all__ = ["Compiler", "Fn"]

Fn = Callable[[Mapping[str, Any]], Any]
_NS_PER_MS = 1_000_000
_MISSING = object()


def _as_error(exc: Exception) -> CelEvaluationError:
    if isinstance(exc, CelEvaluationError):
        return exc
    return CelEvaluationError(f"{type(exc).__name__}: {exc}")


class Compiler:
    """Compiles one checked AST; collects the largest history lookback."""

    def __init__(self, source: str, variables: Collection[str] = (), *, budget: bool = True) -> None:
        self.source = source
        self.budget = budget
        """Macros charge the cost budget (off only to measure what it costs: bench cel)."""
        self.variables = frozenset(variables)
        """The declared variables (a name that is none of them may denote a type: ``int``)."""
        self.max_lookback_ms = 0
        self.windows: list[Fn] = []
        """Per seen()/count() call: when the events it counts next change by time alone (:meth:`_history`)."""
        self.selected: dict[str, set[str]] = {}
        """Per variable, the fields it is read through (``profile.email`` reads ``email``)."""
        self.whole: set[str] = set()
        """Variables used otherwise than through a field (as a map, in has(), as an argument...)."""

    def fail(self, reason: str, node: Node) -> CelCompileError:
        return CelCompileError(reason, node.col, self.source)

    def compile(self, node: Node, local: frozenset[str] = frozenset()) -> Fn:
        method: Callable[[Any, frozenset[str]], Fn] = getattr(self, "_" + type(node).__name__.lower())
        return method(node, local)

    # ------------------------------------------------------------ leaves
    def _literal(self, node: Literal, local: frozenset[str]) -> Fn:
        value = node.value
        return lambda act: value

    def _ident(self, node: Ident, local: frozenset[str]) -> Fn:
        if node.absolute and node.name in local:  # '.y': the variable y, not a macro's y
            self.whole.add(node.name)
            name, hidden = node.name, _GLOBAL + node.name

            def outer(act: Mapping[str, Any]) -> Any:
                if hidden in act:
                    return act[hidden]
                raise CelEvaluationError(f"no value for variable '{name}' in the activation")

            return outer
        if node.name not in local:
            self.whole.add(node.name)
        return self._variable(node, local)

    def _variable(self, node: Ident, local: frozenset[str]) -> Fn:
        name = node.name
        if name in TYPE_DENOTATIONS and name not in local and name not in self.variables:
            denoted = TypeValue(name)
            return lambda act: denoted
        if name == "now" and name not in local:

            def now(act: Mapping[str, Any]) -> Any:
                return Timestamp(now_ms(act) * _NS_PER_MS)

            return now

        def ident(act: Mapping[str, Any]) -> Any:
            try:
                return act[name]
            except KeyError:
                raise CelEvaluationError(f"no value for variable '{name}' in the activation") from None

        return ident

    # ------------------------------------------------------------ members
    def _select(self, node: Select, local: frozenset[str]) -> Fn:
        fields: list[str] = []
        cur: Node = node
        while isinstance(cur, Select):
            fields.append(cur.field)
            cur = cur.operand
        fields.reverse()
        if isinstance(cur, Ident) and cur.name not in local:
            self.selected.setdefault(cur.name, set()).add(fields[0])
            base = self._variable(cur, local)
        else:
            base = self.compile(cur, local)
        walk = tuple(fields)

        def slow(act: Mapping[str, Any]) -> Any:
            v = base(act)
            for f in walk:
                v = select(v, f)
            return v

        if isinstance(cur, Ident) and cur.name != "now":
            root = cur.name
            if len(walk) == 1:
                (f0,) = walk

                def sel1(act: Mapping[str, Any]) -> Any:
                    m = act.get(root)
                    if type(m) is dict and f0 in m:  # (only a map's fields: never an object's __getitem__)
                        return m[f0]
                    return slow(act)

                return sel1
            if len(walk) == 2:
                f0, f1 = walk

                def sel2(act: Mapping[str, Any]) -> Any:
                    m = act.get(root)
                    if type(m) is dict:
                        n = m.get(f0)
                        if type(n) is dict and f1 in n:
                            return n[f1]
                    return slow(act)

                return sel2

            def seln(act: Mapping[str, Any]) -> Any:
                v = act.get(root)
                for f in walk:
                    if type(v) is not dict or f not in v:
                        return slow(act)
                    v = v[f]
                return v

            return seln
        return slow

    def _has(self, node: Has, local: frozenset[str]) -> Fn:
        operand, field = self.compile(node.operand, local), node.field

        def has(act: Mapping[str, Any]) -> bool:
            v = operand(act)
            if isinstance(v, Mapping):
                return field in v
            raise CelEvaluationError(f"has() cannot test a field of a {type(v).__name__}")

        return has

    def _index(self, node: Index, local: frozenset[str]) -> Fn:
        operand, key = self.compile(node.operand, local), self.compile(node.index, local)
        return lambda act: index(operand(act), key(act))

    # ------------------------------------------------------------ list and map literals
    def _listlit(self, node: ListLit, local: frozenset[str]) -> Fn:
        if all(isinstance(i, Literal) for i in node.items):
            const = [i.value for i in node.items if isinstance(i, Literal)]
            return lambda act: list(const)
        items = tuple(self.compile(i, local) for i in node.items)
        return lambda act: [f(act) for f in items]

    def _maplit(self, node: MapLit, local: frozenset[str]) -> Fn:
        entries = tuple((self.compile(k, local), self.compile(v, local)) for k, v in node.entries)

        def build(act: Mapping[str, Any]) -> dict[Any, Any]:
            out: dict[Any, Any] = {}
            for kf, vf in entries:
                k = kf(act)
                if type(k) not in (str, int, bool, UInt):
                    raise CelEvaluationError(f"unsupported map key type {type(k).__name__}")
                if k in out:
                    raise CelEvaluationError(f"repeated map key {k!r} (true/1 and false/0 also collide here)")
                out[k] = vf(act)
            return out

        return build

    # ------------------------------------------------------------ logic
    def _and(self, node: And, local: frozenset[str]) -> Fn:
        return _logic(tuple(self.compile(t, local) for t in node.terms), decisive=False, op="&&")

    def _or(self, node: Or, local: frozenset[str]) -> Fn:
        return _logic(tuple(self.compile(t, local) for t in node.terms), decisive=True, op="||")

    def _not(self, node: Not, local: frozenset[str]) -> Fn:
        operand = self.compile(node.operand, local)

        def not_(act: Mapping[str, Any]) -> bool:
            v = operand(act)
            if v is True:
                return False
            if v is False:
                return True
            raise no_overload("!", v)

        return not_

    def _cond(self, node: Cond, local: frozenset[str]) -> Fn:
        test, then, orelse = (self.compile(n, local) for n in (node.test, node.then, node.orelse))

        def cond(act: Mapping[str, Any]) -> Any:
            t = test(act)
            if t is True:
                return then(act)
            if t is False:
                return orelse(act)
            raise no_overload("?:", t)

        return cond

    # ------------------------------------------------------------ operators
    def _neg(self, node: Neg, local: frozenset[str]) -> Fn:
        operand = self.compile(node.operand, local)
        return lambda act: neg(operand(act))

    def _binary(self, node: Binary, local: frozenset[str]) -> Fn:
        left = self.compile(node.left, local)
        op = node.op
        right_node = node.right
        if isinstance(right_node, Literal):
            fast = _const_right(op, left, right_node.value)
            if fast is not None:
                return fast
        if op == "in" and isinstance(right_node, ListLit) and right_node.items:
            values = [i.value for i in right_node.items if isinstance(i, Literal)]
            if len(values) == len(right_node.items) and all(type(v) is str for v in values):
                strings = frozenset(values)

                def in_strings(act: Mapping[str, Any]) -> bool:
                    v = left(act)
                    return type(v) is str and v in strings

                return in_strings
        right = self.compile(right_node, local)
        fn = BINARY[op]
        return lambda act: fn(left(act), right(act))

    # ------------------------------------------------------------ calls
    def _call(self, node: Call, local: frozenset[str]) -> Fn:
        if node.target is None and node.name in ("seen", "count"):
            return self._history(node, local)
        args = ((node.target,) if node.target is not None else ()) + node.args
        if node.target is None and node.name in ("duration", "timestamp") and len(args) == 1:
            arg = args[0]
            if isinstance(arg, Literal) and type(arg.value) is str:
                value = self._literal_time(node.name, arg.value, node)
                return lambda act: value
        if (
            node.name == "matches"
            and len(args) == 2
            and isinstance(args[1], Literal)
            and type(args[1].value) is str
        ):
            try:
                regex = compile_regex(args[1].value)
            except CelEvaluationError as exc:
                raise self.fail(exc.reason, args[1]) from None
            subject = self.compile(args[0], local)

            def matches(act: Mapping[str, Any]) -> bool:
                v = subject(act)
                if type(v) is not str:
                    raise no_overload("matches", v)
                return regex.search(v) is not None

            return matches
        found = FUNCTIONS.get((node.name, node.target is not None))
        compiled = tuple(self.compile(a, local) for a in args)
        if found is None:  # (only unchecked: the checker refuses it otherwise)
            name = node.name

            def unknown(act: Mapping[str, Any]) -> Any:
                for a in compiled:
                    a(act)
                raise CelEvaluationError(f"unknown function '{name}'")

            return unknown
        fn = found.impl
        if len(compiled) == 1:
            (a0,) = compiled
            return lambda act: fn(a0(act))
        if len(compiled) == 2:
            a0, a1 = compiled
            return lambda act: fn(a0(act), a1(act))
        return lambda act: fn(*[a(act) for a in compiled])

    def _literal_time(self, name: str, text: str, node: Node) -> Timestamp | Duration:
        try:
            return parse_duration(text) if name == "duration" else parse_timestamp(text)
        except CelEvaluationError as exc:
            raise self.fail(exc.reason, node) from None

    def _history(self, node: Call, local: frozenset[str]) -> Fn:
        within_node = node.args[1]
        assert isinstance(within_node, Call)
        assert isinstance(within_node.args[0], Literal)
        within = self._literal_time("duration", str(within_node.args[0].value), within_node)
        assert isinstance(within, Duration)
        if within.ns < 0:
            raise self.fail(f"{node.name}() needs a positive duration", within_node)
        window_ms = math.ceil(within.ns / _NS_PER_MS)
        self.max_lookback_ms = max(self.max_lookback_ms, window_ms)
        type_fn = self.compile(node.args[0], local)
        where: tuple[tuple[str, Fn], ...] = ()
        if len(node.args) == 3:
            where_node = node.args[2]
            assert isinstance(where_node, MapLit)
            where = tuple(
                (str(k.value), self.compile(v, local))
                for k, v in where_node.entries
                if isinstance(k, Literal)
            )
        history, next_change = history_call(node.name, type_fn, where, window_ms)
        self.windows.append(next_change)
        return history

    # ------------------------------------------------------------ macros
    def _comprehension(self, node: Comprehension, local: frozenset[str]) -> Fn:
        target = self.compile(node.target, local)
        inner_local = local | {node.var}
        pred = self.compile(node.predicate, inner_local) if node.predicate is not None else None
        transform = self.compile(node.transform, inner_local) if node.transform is not None else None
        var, macro = node.var, node.macro

        left = BUDGET.left if self.budget else None

        def items(act: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
            coll = target(act)
            if not isinstance(coll, list | tuple | Mapping):
                raise no_overload(macro, coll)
            if left is not None:
                left[0] -= len(coll)
                if left[0] < 0:
                    raise over_budget()
            scope = dict(act)
            if var in act:  # hides a variable: kept for a '.name' that means the outer one
                scope.setdefault(_GLOBAL + var, act[var])
            return coll, scope

        if macro in ("all", "exists"):
            assert pred is not None
            decisive = macro == "exists"  # the value that ends the loop early

            def quantifier(act: Mapping[str, Any]) -> bool:
                coll, scope = items(act)
                err: CelEvaluationError | None = None
                for item in coll:
                    scope[var] = item
                    try:
                        v = pred(scope)
                    except Exception as exc:
                        err = err or _as_error(exc)
                        continue
                    if v is decisive:
                        return decisive is True
                    if v is not (not decisive):
                        err = err or no_overload(macro, v)
                if err is not None:
                    raise err
                return not decisive

            return quantifier
        if macro == "exists_one":
            assert pred is not None

            def exists_one(act: Mapping[str, Any]) -> bool:
                coll, scope = items(act)
                n = 0
                for item in coll:
                    scope[var] = item
                    v = pred(scope)
                    if v is True:
                        n += 1
                    elif v is not False:
                        raise no_overload(macro, v)
                return n == 1

            return exists_one

        def mapper(act: Mapping[str, Any]) -> list[Any]:
            coll, scope = items(act)
            out: list[Any] = []
            for item in coll:
                scope[var] = item
                if pred is not None:
                    keep = pred(scope)
                    if keep is not True and keep is not False:
                        raise no_overload(macro, keep)
                    if not keep:
                        continue
                out.append(transform(scope) if transform is not None else item)
            return out

        return mapper


_GLOBAL = "\x00outer:"
"""Where a macro keeps the value of a variable its own variable hides (for ``.name``)."""

_EXACT = 2**53
"""Ints up to this size are doubles exactly."""


def _const_right(op: str, left: Fn, c: Any) -> Fn | None:
    """Fast paths for comparing with a literal on the right, the common shape of journey conditions."""
    tc = type(c)
    if op == "==" and tc is bool:
        return (lambda act: left(act) is True) if c else (lambda act: left(act) is False)
    if op == "!=" and tc is bool:
        return (lambda act: left(act) is not True) if c else (lambda act: left(act) is not False)
    if op in ("==", "!=") and tc is str:
        equal = op == "=="

        def str_eq(act: Mapping[str, Any]) -> bool:
            v = left(act)
            return (type(v) is str and v == c) is equal

        return str_eq
    if op in ("<", "<=", ">", ">=") and (tc is int or tc is float):
        # Python compares an int and a float exactly, CEL as doubles: the same whenever the int is one
        # a double holds exactly (|n| <= 2^53); past that, the slow path converts
        slow = {"<": lt, "<=": le, ">": gt, ">=": ge}[op]
        held = tc is float or -_EXACT <= c <= _EXACT  # a float value meets this literal exactly
        other = float if tc is int else int

        def fast(v: Any, tv: type) -> bool:
            return tv is tc or (tv is other and (held if tv is float else -_EXACT <= v <= _EXACT))

        if op == ">":

            def gt_num(act: Mapping[str, Any]) -> bool:
                v = left(act)
                tv = type(v)
                return v > c if tv is tc or fast(v, tv) else slow(v, c)

            return gt_num
        if op == "<":

            def lt_num(act: Mapping[str, Any]) -> bool:
                v = left(act)
                tv = type(v)
                return v < c if tv is tc or fast(v, tv) else slow(v, c)

            return lt_num
        if op == ">=":

            def ge_num(act: Mapping[str, Any]) -> bool:
                v = left(act)
                tv = type(v)
                return v >= c if tv is tc or fast(v, tv) else slow(v, c)

            return ge_num

        def le_num(act: Mapping[str, Any]) -> bool:
            v = left(act)
            tv = type(v)
            return v <= c if tv is tc or fast(v, tv) else slow(v, c)

        return le_num
    return None


def _logic(terms: tuple[Fn, ...], *, decisive: bool, op: str) -> Fn:
    """CEL's ``&&`` (decisive False) and ``||`` (decisive True): commutative with respect to errors —
    a decisive term wins over an error or a non-bool in any other term."""

    win: bool = decisive
    other: bool = not decisive

    def logic(act: Mapping[str, Any]) -> bool:
        err: CelEvaluationError | None = None
        for term in terms:
            try:
                v = term(act)
            except Exception as exc:
                err = err or _as_error(exc)
                continue
            if v is win:
                return not other
            if v is not other:
                err = err or no_overload(op, v)
        if err is not None:
            raise err
        return other

    return logic
