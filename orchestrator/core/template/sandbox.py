"""The Jinja2 environment templates are compiled and rendered in: sandboxed, strict and bounded.

- :class:`jinja2.sandbox.ImmutableSandboxedEnvironment`, and tighter: a template reads the fields of maps
  (``profile.first_name``, ``order["id"]``) and the items of lists, nothing of Python objects (no
  ``''.__class__``, no ``name.upper``: filters do that, ``{{ name|upper }}``); no globals (``range``,
  ``namespace``, ``lipsum``...), no calls, no ``{% include %}``/``{% extends %}``/``{% import %}``,
  ``{% macro %}``, ``{% block %}`` or ``{% autoescape %}`` (refused when the template is loaded:
  :func:`static_problems`).
- :class:`StrictUndefined`: a missing value raises (:class:`MissingValue`) instead of rendering empty;
  ``{{ x|default("...") }}`` and ``{% if x is defined %}`` are the ways to allow one.
- Bounded: the filters are a fixed list (:data:`FILTERS`), each result at most :data:`MAX_VALUE_CHARS`
  characters, as are ``+`` and ``*`` (checked before they allocate: also when Jinja folds constants
  while compiling); ``%`` is not string formatting; ``**`` stays below 2**256; loops share a budget of
  :data:`MAX_ITERATIONS` steps per render; loops nest at most :data:`MAX_LOOP_DEPTH` deep.
- Autoescape in the HTML environment only (:func:`environment`).

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import wraps
from typing import Any

from jinja2 import StrictUndefined, nodes, pass_context, pass_eval_context
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, LoopContext, Undefined, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing
from markupsafe import escape

__all__ = [
    "FILTERS",
    "MAX_ITERATIONS",
    "MAX_LOOP_DEPTH",
    "MAX_VALUE_CHARS",
    "MissingValue",
    "OverLimit",
    "Refused",
    "environment",
    "prepare",
    "static_problems",
]

MAX_VALUE_CHARS = 500_000
"""Longest text or list a filter or an operator may make while rendering (the longest part's limit)."""
MAX_ITERATIONS = 100_000
"""Loop steps of all the loops of one render together."""
MAX_LOOP_DEPTH = 3
"""Loops inside loops inside loops, at most."""
BUDGET = "__budget__"
"""The render variable holding the loop budget (a template cannot name it: names are declared)."""
_ITERATE = "_iterate"
"""The hidden filter every loop's iterable goes through (counts the steps)."""
_CONCAT = "_concat"
"""The hidden filter ``a ~ b`` becomes (checks the size of what it makes)."""

FILTERS = (
    "abs", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float", "int",
    "join", "last", "length", "list", "lower", "max", "min", "replace", "reverse", "round", "sort",
    "string", "sum", "title", "tojson", "trim", "truncate", "unique", "upper", "urlencode", "wordcount",
)  # fmt: skip
"""The filters a template may use (Jinja's, bounded). Not among them: ``safe`` (in HTML, values are always
escaped), those that make text of a width given (``center``, ``indent``, ``format``, ``wordwrap``),
``striptags`` (quadratic on text full of ``<``), ``attr``, ``map``/``select`` and the like (they name
fields and filters by text), ``random``."""
MAX_JSON_INDENT = 8
_LOOP_FIELDS = frozenset(
    {"index", "index0", "revindex", "revindex0", "first", "last", "length", "depth", "depth0", "previtem",
     "nextitem"}
)  # fmt: skip


class Refused(SecurityError):
    """The template asked for something the sandbox does not do (a field of a Python object, ...)."""


class OverLimit(SecurityError):
    """A value, the output or the loops went over their limit."""


class MissingValue(UndefinedError):
    """A value the template reads is missing: ``name`` of ``container`` (None: a top-level name)."""

    def __init__(self, message: str, container: Any, name: Any) -> None:
        super().__init__(message)
        self.container = container
        self.name = name


class _Strict(StrictUndefined):
    """StrictUndefined raising :class:`MissingValue` with what was missing (or the sandbox's refusal)."""

    __slots__ = ()

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> Any:
        if issubclass(self._undefined_exception, SecurityError):
            raise Refused(self._undefined_hint or "refused by the sandbox")
        container = None if self._undefined_obj is missing else self._undefined_obj
        raise MissingValue(self._undefined_message, container, self._undefined_name)


# (Undefined's operators are bound to its own _fail_with_undefined_error: bind them to the one above)
for _name, _value in [*vars(Undefined).items(), *vars(StrictUndefined).items()]:
    if _value is Undefined._fail_with_undefined_error:
        setattr(_Strict, _name, _Strict._fail_with_undefined_error)


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple | dict) else 0


def _bounded(value: Any, what: str) -> Any:
    if _size(value) > MAX_VALUE_CHARS:
        raise OverLimit(
            f"{what} made a value of {_size(value)} characters or items (at most {MAX_VALUE_CHARS})"
        )
    return value


def _wrap(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(func)  # (keeps Jinja's pass_context/pass_eval_context marks)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        return _bounded(func(*args, **kwargs), f"filter {name!r}")

    return bounded


def _join(value: Iterable[Any], d: str = "", attribute: Any = None) -> Any:
    items = list(value)
    if attribute is not None:
        raise Refused("join(attribute=...) is not available")
    sizes = sum(len(str(i)) for i in items) + len(str(d)) * max(len(items) - 1, 0)
    if sizes > MAX_VALUE_CHARS:
        raise OverLimit(f"filter 'join' would make {sizes} characters (at most {MAX_VALUE_CHARS})")
    if any(hasattr(i, "__html__") for i in [*items, d]):
        return escape(d).join(items)  # (Markup's join escapes each item)
    return str(d).join(str(i) for i in items)


def _plain_replace(eval_ctx: Any, value: Any, old: str, new: str, count: int | None = None) -> Any:
    """Jinja's ``replace`` (Markup-aware), after checking the size of what it makes."""
    text = str(value)
    hits = text.count(str(old)) if count is None else min(max(count, 0), text.count(str(old)))
    if len(text) + hits * (len(str(new)) - len(str(old))) > MAX_VALUE_CHARS:
        raise OverLimit(f"filter 'replace' would make more than {MAX_VALUE_CHARS} characters")
    return JINJA_FILTERS["replace"](eval_ctx, value, old, new, count)


def _tojson(eval_ctx: Any, value: Any, indent: Any = None) -> Any:
    """Jinja's ``tojson``, with an indent of at most :data:`MAX_JSON_INDENT` (each level repeats it)."""
    if indent is not None and (
        isinstance(indent, bool) or not isinstance(indent, int) or not 0 <= indent <= MAX_JSON_INDENT
    ):
        raise Refused(f"tojson's indent is a number from 0 to {MAX_JSON_INDENT}")
    return JINJA_FILTERS["tojson"](eval_ctx, value, indent)


def _iterate(context: Context, value: Any) -> Iterator[Any]:
    """Every loop's iterable: counts its steps against the render's budget; text is not iterated."""
    if isinstance(value, str):
        raise Refused("a loop over text is not available (loop over a list, or a map's keys)")
    if isinstance(value, Undefined):
        iter(value)  # (raises: a missing value)
    budget = context.get(BUDGET)
    for item in value:
        if budget is not None:
            budget[0] += 1
            if budget[0] > MAX_ITERATIONS:
                raise OverLimit(f"the loops took more than {MAX_ITERATIONS} steps")
        yield item


def _concat(eval_ctx: EvalContext, parts: list[Any]) -> Any:
    """``a ~ b ~ c``: Jinja's concatenation (escaping in HTML), after checking the size it makes."""
    size = sum(len(str(p)) for p in parts)
    if size > MAX_VALUE_CHARS:
        raise OverLimit(f"'~' would make {size} characters (at most {MAX_VALUE_CHARS})")
    return markup_join(parts) if eval_ctx.autoescape else str_join(parts)


def _finalize(value: Any) -> Any:
    """What ``{{ ... }}`` prints: text, numbers, true/false; never a whole map or list."""
    if isinstance(value, Mapping):
        raise Refused("prints a whole map: name one of its fields")
    if isinstance(value, list | tuple | set):
        raise Refused("prints a whole list: loop over it, or join it (|join(', '))")
    return value


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        return self._field(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, list | tuple | str) and (isinstance(argument, int | slice)):
            try:
                return obj[argument]
            except (IndexError, TypeError, ValueError):
                return self.undefined(obj=obj, name=argument)  # type: ignore[arg-type]
        return self._field(obj, argument)

    def _field(self, obj: Any, name: Any) -> Any:
        if isinstance(name, str) and name.startswith("_"):
            return self._refuse(f"names starting with '_' are not available ({name!r})")
        if isinstance(obj, Mapping):
            try:
                return obj[name]
            except (KeyError, TypeError):
                return self.undefined(obj=obj, name=name)
        if isinstance(obj, LoopContext) and name in _LOOP_FIELDS:
            return getattr(obj, name)
        if isinstance(obj, Undefined):
            return obj  # (the first missing value is the one named)
        return self._refuse(
            f"a {_kind(obj)} has no fields ({name!r}): only maps have fields; use a filter, e.g. "
            f"{{{{ value|upper }}}}"
        )

    def _refuse(self, hint: str) -> Any:
        return self.undefined(hint, exc=SecurityError)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "+" and _size(left) + _size(right) > MAX_VALUE_CHARS:
            raise OverLimit(f"'+' would make more than {MAX_VALUE_CHARS} characters or items")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(n, int)
                    and len(seq) * n > MAX_VALUE_CHARS
                ):
                    raise OverLimit(f"'*' would make more than {MAX_VALUE_CHARS} characters or items")
        if operator == "%" and isinstance(left, str):
            raise Refused("'%' formatting of text is not available (write the parts side by side)")
        if operator == "**" and _huge_power(left, right):
            raise OverLimit("'**' would make a number beyond 2**256")
        return self.binop_table[operator](left, right)


def _huge_power(left: Any, right: Any) -> bool:
    if not isinstance(left, int | float) or not isinstance(right, int | float):
        return False
    base = abs(float(left))
    if base <= 1 or right <= 0:
        return False
    try:
        return float(right) * math.log2(base) > 256
    except (OverflowError, ValueError):
        return True


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "true/false value"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list | tuple):
        return "list"
    return "value"


def _make(autoescape: bool) -> _Environment:
    env = _Environment(
        autoescape=autoescape,
        undefined=_Strict,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
        cache_size=0,
    )
    env.globals.clear()
    env.filters = {name: _wrap(name, JINJA_FILTERS[name]) for name in FILTERS}
    env.filters["join"] = _join
    env.filters["replace"] = pass_eval_context(_plain_replace)
    env.filters["tojson"] = _wrap("tojson", pass_eval_context(_tojson))
    env.filters[_ITERATE] = pass_context(_iterate)
    env.filters[_CONCAT] = pass_eval_context(_concat)
    return env


_PLAIN = _make(autoescape=False)
_HTML = _make(autoescape=True)


def environment(html: bool) -> _Environment:
    """The environment of an HTML part (autoescape on) or of any other part (off)."""
    return _HTML if html else _PLAIN


# -- loading: what a template may contain -------------------------------------------------------------
_REFUSED_NODES: tuple[tuple[type[nodes.Node], str], ...] = (
    (nodes.Extends, "{% extends %} is not available: a template stands alone"),
    (nodes.Include, "{% include %} is not available: a template stands alone"),
    (nodes.Import, "{% import %} is not available: a template stands alone"),
    (nodes.FromImport, "{% from ... import %} is not available: a template stands alone"),
    (nodes.Macro, "{% macro %} is not available"),
    (nodes.CallBlock, "{% call %} is not available"),
    (nodes.Block, "{% block %} is not available: a template stands alone"),
    (nodes.Call, "calls are not available: use a filter, e.g. {{ name|upper }}"),
    (
        nodes.ScopedEvalContextModifier,
        "{% autoescape %} is not available: the HTML part is always escaped, the other parts never",
    ),
    (
        nodes.EvalContextModifier,
        "{% autoescape %} is not available: the HTML part is always escaped, the other parts never",
    ),
)


def static_problems(ast: nodes.Template, tests: Iterable[str]) -> list[tuple[int, str]]:
    """(Jinja line, message) for what the sandbox refuses in a parsed template: the statements and
    calls above, unknown filters and tests, names starting with '_', loops too deep or recursive."""
    from orchestrator.core.journey.reader import did_you_mean  # (the journey language's suggestion)

    found: list[tuple[int, str]] = []
    for node_type, message in _REFUSED_NODES:
        found += [(n.lineno, message) for n in ast.find_all(node_type)]
    known_tests = set(tests)
    for f in ast.find_all(nodes.Filter):
        if f.name not in FILTERS:
            found.append(
                (f.lineno, f"filter {f.name!r} is not available{did_you_mean(f.name, FILTERS)}; "
                 f"available: {', '.join(FILTERS)}")
            )  # fmt: skip
    for t in ast.find_all(nodes.Test):
        if t.name not in known_tests:
            found.append((t.lineno, f"test {t.name!r} is not available{did_you_mean(t.name, known_tests)}"))
    for g in ast.find_all(nodes.Getattr):
        if g.attr.startswith("_"):
            found.append((g.lineno, f"names starting with '_' are not available ({g.attr!r})"))
    for i in ast.find_all(nodes.Getitem):
        if isinstance(i.arg, nodes.Const) and isinstance(i.arg.value, str) and i.arg.value.startswith("_"):
            found.append((i.lineno, f"names starting with '_' are not available ({i.arg.value!r})"))
    for loop in ast.find_all(nodes.For):
        if loop.recursive:
            found.append((loop.lineno, "recursive loops are not available"))
    found += _deep_loops(ast, 0)
    return sorted(set(found))


def _deep_loops(node: nodes.Node, depth: int) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for child in node.iter_child_nodes():
        inner = depth + 1 if isinstance(child, nodes.For) else depth
        if inner > MAX_LOOP_DEPTH and isinstance(child, nodes.For):
            found.append((child.lineno, f"loops nest at most {MAX_LOOP_DEPTH} deep"))
            continue
        found += _deep_loops(child, inner)
    return found


def prepare(ast: nodes.Template) -> nodes.Template:
    """The parsed template as it is compiled: every loop's iterable counted against the budget, every
    ``~`` through a filter that checks the size it makes."""
    for node in list(ast.find_all(nodes.Node)):
        for name, value in node.iter_fields():
            if isinstance(value, nodes.Concat):
                setattr(node, name, _checked_concat(value))
            elif isinstance(value, list):
                value[:] = [_checked_concat(v) if isinstance(v, nodes.Concat) else v for v in value]
    for loop in ast.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, _ITERATE, [], [], None, None, lineno=loop.iter.lineno)
    return ast


def _checked_concat(node: nodes.Concat) -> nodes.Filter:
    parts = nodes.List(node.nodes, lineno=node.lineno)
    return nodes.Filter(parts, _CONCAT, [], [], None, None, lineno=node.lineno)
