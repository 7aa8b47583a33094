"""YAML with line numbers: plain Python values plus the line of every node, by field path.

PyYAML's ``compose`` gives nodes with start marks; we turn the node tree into plain values
(dict / list / str / int / float / bool / None) and remember, for each path such as
``("steps", "wait_open", "timeout", "next")``, the 1-based line where its value starts. The
validator uses that to name file, line and field in every problem. Duplicate keys, which PyYAML
would silently collapse, are reported. Pure Python, no dependency beyond PyYAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["Path", "SourceDoc", "compose_text", "format_path"]

Path = tuple[str | int, ...]


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


def _scalar(node: yaml.ScalarNode) -> Any:
    # Resolve the scalar with the safe constructor's rules (ints, floats, bools, null, str).
    value = _LOADER.construct_object(node, deep=True)
    _LOADER.constructed_objects.clear()
    if not isinstance(value, str | int | float | bool) and value is not None:
        # Dates and timestamps become their text: journeys only use strings for those.
        return node.value
    return value


def _convert(node: yaml.Node, path: Path, doc: SourceDoc) -> Any:
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
            out[key] = _convert(value_node, child, doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), doc) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    return _scalar(node)


def compose_text(text: str, source_name: str) -> SourceDoc:
    """Parse one YAML document. YAML syntax errors become problems (with their line), never exceptions."""
    doc = SourceDoc(source_name=source_name, value=None)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        doc.problems.append(f"{source_name}:{line}: (root): not valid YAML: {exc.problem or exc}")
        return doc
    except yaml.YAMLError as exc:
        doc.problems.append(f"{source_name}:1: (root): not valid YAML: {exc}")
        return doc
    if node is None:
        doc.problems.append(f"{source_name}:1: (root): the file is empty")
        return doc
    doc.value = _convert(node, (), doc)
    return doc
