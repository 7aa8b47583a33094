"""A reader of the protocol buffer text format, without the schema: enough for cel-spec's conformance
files (``SimpleTestFile``). A message reads as ``{field: [value, ...]}`` (every field a list, as if
repeated); a value is a nested message (dict), a string (:class:`Text`: the raw bytes after escapes), a
number or identifier (:class:`Word`: its text, e.g. ``-1``, ``1e3``, ``inf``, ``NULL_VALUE``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Text", "Word", "parse"]


@dataclass(frozen=True, slots=True)
class Text:
    raw: bytes

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8")


@dataclass(frozen=True, slots=True)
class Word:
    text: str


Message = dict[str, list[Any]]

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<ext>\[[A-Za-z0-9_.]+(?:/[A-Za-z0-9_.]+)?\])
  | (?P<word>-?[A-Za-z0-9_.+\-]+)
  | (?P<punct>[{}<>\[\]:,;])
    """,
    re.VERBOSE | re.DOTALL,
)
_SIMPLE = {"n": 10, "t": 9, "r": 13, "a": 7, "b": 8, "f": 12, "v": 11, "\\": 92, "'": 39, '"': 34, "?": 63}


def _unescape(body: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
            continue
        e = body[i + 1]
        if e in _SIMPLE:
            out.append(_SIMPLE[e])
            i += 2
        elif e in "xX":
            m = re.match(r"[0-9A-Fa-f]{1,2}", body[i + 2 :])
            assert m, body
            out.append(int(m.group(), 16))
            i += 2 + len(m.group())
        elif e in "01234567":
            m = re.match(r"[0-7]{1,3}", body[i + 1 :])
            assert m, body
            out.append(int(m.group(), 8) & 0xFF)
            i += 1 + len(m.group())
        elif e == "u":
            out += chr(int(body[i + 2 : i + 6], 16)).encode("utf-8", "surrogatepass")
            i += 6
        elif e == "U":
            out += chr(int(body[i + 2 : i + 10], 16)).encode("utf-8", "surrogatepass")
            i += 10
        else:
            raise ValueError(f"unknown escape \\{e} in {body!r}")
    return bytes(out)


def _tokens(source: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            raise ValueError(f"cannot read the text format at {source[pos : pos + 30]!r}")
        pos = m.end()
        kind = m.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append((kind, m.group()))
    return tokens


class _Reader:
    def __init__(self, source: str) -> None:
        self.tokens = _tokens(source)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expect(self, text: str) -> None:
        _, got = self.take()
        if got != text:
            raise ValueError(f"expected {text!r}, got {got!r}")

    def message(self, end: str | None) -> Message:
        fields: Message = {}
        while True:
            token = self.peek()
            if token is None:
                if end is not None:
                    raise ValueError(f"missing {end!r}")
                return fields
            if token[1] == end:
                self.take()
                return fields
            if token[1] in (",", ";"):
                self.take()
                continue
            kind, name = self.take()
            if kind not in ("word", "ext"):
                raise ValueError(f"a field name was expected, got {name!r}")
            colon = self.peek() is not None and self.peek() == ("punct", ":")
            if colon:
                self.take()
            fields.setdefault(name, []).extend(self.values())

    def values(self) -> list[Any]:
        token = self.peek()
        assert token is not None
        if token[1] == "[":
            self.take()
            found: list[Any] = []
            while self.peek() != ("punct", "]"):
                if self.peek() == ("punct", ","):
                    self.take()
                    continue
                found += self.values()
            self.take()
            return found
        return [self.value()]

    def value(self) -> Any:
        kind, text = self.take()
        if text in ("{", "<"):
            return self.message("}" if text == "{" else ">")
        if kind == "string":
            raw = _unescape(text[1:-1])
            while self.peek() is not None and self.peek()[0] == "string":  # type: ignore[index]
                raw += _unescape(self.take()[1][1:-1])  # adjacent strings are one
            return Text(raw)
        if kind == "word":
            return Word(text)
        raise ValueError(f"a value was expected, got {text!r}")


def parse(source: str) -> Message:
    return _Reader(source).message(None)
