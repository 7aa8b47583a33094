"""YAML with line numbers: plain Python values plus the line of every node, by field path.

PyYAML's ``compose`` gives nodes with start marks; we turn the node tree into plain values
(dict / list / str / int / float / bool / None) and remember, for each path such as
``("steps", "wait_open", "timeout", "next")``, the 1-based line where its value starts. The
validator uses that to name file, line and field in every problem. Duplicate keys, which PyYAML
would silently collapse, are reported. Pure Python, no dependency beyond PyYAML.

Hostile input is refused fast and in bounded memory, as a problem with file and line, never an
exception: files over :data:`MAX_SOURCE_BYTES`, text that is not UTF-8, nesting deeper than
:data:`MAX_DEPTH`, more than :data:`MAX_ALIASES` aliases or :data:`MAX_NODES` values once aliases are
expanded (the "billion laughs" alias bomb), any tag but plain YAML's (``!!python/...`` and custom
tags), integers beyond 64 bits and non-finite floats. The event stream is checked before any node
tree is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import yaml

__all__ = [
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_SOURCE_BYTES",
    "Path",
    "SourceDoc",
    "compose_text",
    "format_path",
    "read_source",
]

Path = tuple[str | int, ...]

MAX_SOURCE_BYTES = 256 * 1024
"""Largest journey or policy file (UTF-8 bytes); its deployment record must fit Kafka's 1 MB limit."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and sequences."""
MAX_ALIASES = 100
"""Most ``*alias`` references in one file."""
MAX_NODES = 50_000
"""Most values in one file once aliases are expanded."""
_INT64 = 2**63
_SAFE_TAGS = frozenset(
    {None, "!", *(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq"))}
)
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Refused(Exception):
    """Reading stops: ``problem`` says why (file:line: field: message)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(slots=True)
class SourceDoc:
    """A parsed YAML document: its value, the line of each path and the problems met while reading."""

    source_name: str
    value: Any
    lines: dict[Path, int] = field(default_factory=dict)
    key_lines: dict[Path, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def line(self, path: Path) -> int:
        """The line of ``path``'s value, or of its nearest ancestor that exists (1 for the root)."""
        p = path
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), 1)

    def key_line(self, path: Path) -> int:
        """The line of the key that introduces ``path`` (falls back to :meth:`line`)."""
        return self.key_lines.get(path) or self.line(path)

    def where(self, path: Path) -> str:
        return f"{self.source_name}:{self.line(path)}"


def format_path(path: Path) -> str:
    """``("steps", "a", "branches", 0, "next")`` -> ``steps.a.branches[0].next``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(root)"


_LOADER = yaml.SafeLoader("")


def _scalar(node: yaml.ScalarNode, path: Path, doc: SourceDoc) -> Any:
    # Resolve the scalar with the safe constructor's rules (ints, floats, bools, null, str).
    try:
        value = _LOADER.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        raise _Refused(
            f"{doc.source_name}:{node.start_mark.line + 1}: {format_path(path)}: cannot read the value: {exc}"
        ) from None
    finally:
        _LOADER.constructed_objects.clear()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            doc.problems.append(
                f"{doc.source_name}:{node.start_mark.line + 1}: {format_path(path)}: "
                "number out of range (more than 64 bits)"
            )
            return 0
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            doc.problems.append(
                f"{doc.source_name}:{node.start_mark.line + 1}: {format_path(path)}: "
                "numbers must be finite (no .inf or .nan)"
            )
            return 0.0
        return value
    # Dates and timestamps become their text: journeys only use strings for those.
    return node.value


class _Budget:
    __slots__ = ("nodes",)

    def __init__(self) -> None:
        self.nodes = 0


def _convert(node: yaml.Node, path: Path, doc: SourceDoc, budget: _Budget) -> Any:
    budget.nodes += 1
    if budget.nodes > MAX_NODES:
        raise _Refused(
            f"{doc.source_name}:{node.start_mark.line + 1}: {format_path(path)}: more than {MAX_NODES} "
            "values once aliases are expanded (an alias bomb?)"
        )
    doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                doc.problems.append(
                    f"{doc.source_name}:{key_node.start_mark.line + 1}: {format_path(path)}: "
                    "keys must be plain text"
                )
                continue
            key = str(key_node.value)
            child = (*path, key)
            if key in out:
                doc.problems.append(
                    f"{doc.source_name}:{key_node.start_mark.line + 1}: {format_path(child)}: "
                    "duplicate key (the later one would silently win)"
                )
                continue
            doc.key_lines[child] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, child, doc, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), doc, budget) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    return _scalar(node, path, doc)


def _check_events(text: str, source_name: str) -> None:
    """Walk the event stream (no tree is built): depth, aliases and tags within bounds."""
    depth = aliases = 0
    for event in yaml.parse(text, Loader=_Loader):
        line = event.start_mark.line + 1 if event.start_mark is not None else 1
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _Refused(f"{source_name}:{line}: (root): nested deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise _Refused(f"{source_name}:{line}: (root): more than {MAX_ALIASES} aliases")
        tag = getattr(event, "tag", None)
        if tag not in _SAFE_TAGS:
            shown = str(tag).replace("tag:yaml.org,2002:", "!!")
            raise _Refused(
                f"{source_name}:{line}: (root): tag {shown!r} is not allowed (plain YAML only: no "
                "!!python or custom tags)"
            )


def compose_text(text: str, source_name: str) -> SourceDoc:
    """Parse one YAML document. YAML syntax errors and the limits of the module docstring become
    problems (with their line), never exceptions."""
    doc = SourceDoc(source_name=source_name, value=None)
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_SOURCE_BYTES:
        doc.problems.append(
            f"{source_name}:1: (file): {size} bytes, over the limit of {MAX_SOURCE_BYTES} bytes"
        )
        return doc
    try:
        _check_events(text, source_name)
        node = yaml.compose(text, Loader=_Loader)
        if node is None:
            doc.problems.append(f"{source_name}:1: (root): the file is empty")
            return doc
        doc.value = _convert(node, (), doc, _Budget())
    except _Refused as exc:
        doc.problems.append(exc.problem)
        doc.value = None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        doc.problems.append(f"{source_name}:{line}: (root): not valid YAML: {exc.problem or exc}")
        doc.value = None
    except (yaml.YAMLError, RecursionError, UnicodeError) as exc:
        doc.problems.append(f"{source_name}:1: (root): not valid YAML: {exc}")
        doc.value = None
    return doc


def read_source(path: str | FsPath) -> tuple[str | None, str | None]:
    """(text, None) for a readable UTF-8 file within :data:`MAX_SOURCE_BYTES`; else (None, problem)."""
    p = FsPath(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_SOURCE_BYTES + 1)
    except OSError as exc:
        return None, f"{p}:1: (file): cannot read the file: {exc.strerror or exc}"
    if len(data) > MAX_SOURCE_BYTES:
        return None, f"{p}:1: (file): over the limit of {MAX_SOURCE_BYTES} bytes"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return None, f"{p}:{line}: (file): not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}"
