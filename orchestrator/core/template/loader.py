"""Load template files: YAML text -> validated, compiled :class:`TemplateDefinition`, problems as
``file:line: field: message``.

A template file says ``kind: template`` at its top level (how ``orchestrator validate``, ``deploy`` and
the simulator tell it from a journey, a policy, a segment or a campaign)::

    kind: template
    id: welcome_email_v1          # what a send step's `template:` names
    version: 1
    channel: email
    variables:
      first_name: {default: there}
    subject: "Welcome, {{ first_name }}!"
    text: |
      Hello {{ first_name }}, ...
    html: |
      <p>Hello {{ first_name }}, ...</p>

Each part is compiled by Jinja2's sandbox (:mod:`.sandbox`) when the file is loaded: a syntax error, a
statement or filter the sandbox does not have, a variable that is not declared is a problem with the
file's line (Jinja's line within the part, counted from where the part's text starts). Every field and
rule: docs/templates.md.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path as FsPath
from typing import Any, cast

import orjson
from jinja2 import meta, nodes
from jinja2.exceptions import TemplateError, TemplateSyntaxError

from orchestrator.core.journey.reader import Reader, did_you_mean
from orchestrator.core.journey.yamlsrc import Path, compose_text, read_source
from orchestrator.core.template.model import (
    PART_LIMITS,
    PARTS,
    TemplateChannel,
    TemplateDefinition,
    TemplatePart,
    TemplateVariable,
)
from orchestrator.core.template.sandbox import environment, prepare, static_problems
from orchestrator.exceptions import TemplateValidationError

__all__ = [
    "MAX_DATA_KEYS",
    "MAX_DEFAULT_CHARS",
    "MAX_ID_CHARS",
    "MAX_VARIABLES",
    "TEMPLATE_KIND",
    "is_template_file",
    "is_template_text",
    "load_template_file",
    "load_template_text",
]

TEMPLATE_KIND = "template"
MAX_VARIABLES = 50
MAX_DATA_KEYS = 20
MAX_DEFAULT_CHARS = 1_000
MAX_ID_CHARS = 100
_TOP = (
    "kind", "id", "version", "name", "description", "channel", "variables", "subject", "html", "text",
    "body", "title", "data",
)  # fmt: skip
_VARIABLE = ("required", "default", "description")
_ALL_PARTS = ("subject", "html", "text", "body", "title", "data")
_REQUIRED_PARTS: dict[str, tuple[str, ...]] = {"email": ("subject",), "sms": ("body",), "push": ("body",)}
VARIABLE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
DATA_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_RESERVED = frozenset(
    {"profile", "loop", "self", "caller", "varargs", "kwargs", "true", "false", "none", "True", "False",
     "None", "and", "or", "not", "in", "is", "if", "else", "for", "recursive"}
)  # fmt: skip
_KIND_LINE = re.compile(r"^kind:\s*['\"]?template['\"]?\s*(#.*)?$", re.MULTILINE)
_BLOCK_SCALAR = re.compile(r"[|>][0-9+-]*\s*(#.*)?$")
_PROFILE_HINTS = frozenset({"first_name", "last_name", "email", "phone", "timezone", "attributes"})
"""Names a template may mean as the profile's (a hint when they are not declared)."""


def is_template_text(text: str) -> bool:
    """True when the YAML text has ``kind: template`` at its top level (a line starting in column 1)."""
    return _KIND_LINE.search(text) is not None


def is_template_file(path: str | FsPath) -> bool:
    text, _ = read_source(path)
    return text is not None and is_template_text(text)


def load_template_text(text: str, source_name: str = "<text>") -> TemplateDefinition:
    """Parse, validate and compile one template; raises TemplateValidationError with all problems."""
    doc = compose_text(text, source_name)
    reader = Reader(doc, 0)
    if doc.value is None:
        raise TemplateValidationError(reader.problems or [f"{source_name}:1: (root): the file is empty"])
    template = _template(reader, doc.value, text.splitlines())
    if reader.problems or template is None:
        raise TemplateValidationError(reader.problems or [f"{source_name}:1: (root): invalid template"])
    return template


def load_template_file(path: str | FsPath) -> TemplateDefinition:
    """Load one template file (see :func:`load_template_text`)."""
    text, problem = read_source(path)
    if text is None:
        raise TemplateValidationError([problem or f"{path}:1: (file): cannot read the file"])
    return load_template_text(text, str(path))


def _template(r: Reader, value: Any, lines: list[str]) -> TemplateDefinition | None:
    data = r.mapping(value, (), allowed=_TOP, required=("kind", "id", "version", "channel"))
    if data is None:
        return None
    if "kind" in data and data["kind"] != TEMPLATE_KIND:
        r.error(("kind",), f"expected 'template', got {data['kind']!r}")
    tid = r.name(data, "id", ())
    if tid is not None and len(tid) > MAX_ID_CHARS:
        r.error(("id",), f"at most {MAX_ID_CHARS} characters")
        tid = None
    version = r.integer(data, "version", (), default=1, minimum=1)
    channel = r.choice(data, "channel", (), tuple(PARTS), "") if "channel" in data else ""
    before = len(r.problems)
    variables = _variables(r, data)
    declared = {v.name for v in variables} if len(r.problems) == before else None
    parts = _parts(r, data, channel, declared, lines) if channel else None
    if tid is None or not channel or parts is None:
        return None
    compiled, profile_fields = parts
    return TemplateDefinition(
        id=tid,
        version=version,
        channel=cast(TemplateChannel, channel),
        name=r.string(data, "name", (), default=tid) or tid,
        description=r.string(data, "description", (), default="") or "",
        parts=compiled,
        variables=variables,
        profile_fields=profile_fields,
        source_name=r.doc.source_name,
        content_hash=_content_hash(data),
    )


def _variables(r: Reader, top: dict[str, Any]) -> tuple[TemplateVariable, ...]:
    """``variables``: name -> ``{required: true}`` or ``{default: value}`` (and a ``description``)."""
    path: Path = ("variables",)
    value = top.get("variables")
    if value is None:
        return ()
    if not isinstance(value, dict):
        r.error(path, "expected a mapping of name: {required: true} or {default: value}")
        return ()
    if len(value) > MAX_VARIABLES:
        r.error(path, f"{len(value)} variables, more than the limit of {MAX_VARIABLES}")
        return ()
    out: list[TemplateVariable] = []
    for name, spec in value.items():
        at = (*path, name)
        if not VARIABLE_RE.match(name):
            r.error(at, f"{name!r} is not a variable name (letters, digits and _, starting with a letter)")
            continue
        if name in _RESERVED:
            why = "the customer's profile" if name == "profile" else "a word of the template language"
            r.error(at, f"{name!r} is reserved ({why})")
            continue
        data = r.mapping(spec, at, allowed=_VARIABLE)
        if data is None:
            continue
        required = r.boolean(data, "required", at, False)
        description = r.string(data, "description", at, default="") or ""
        has_default = "default" in data and data["default"] is not None
        if required and has_default:
            r.error((*at, "default"), "a required variable has no default: remove one of the two")
            continue
        if not required and not has_default:
            r.error(
                at,
                "write required: true (a message without it is not sent) or a default (used when the "
                "send gives none)",
            )
            continue
        default = data.get("default")
        if has_default and len(orjson.dumps(default)) > MAX_DEFAULT_CHARS:
            r.error((*at, "default"), f"at most {MAX_DEFAULT_CHARS} characters (written as JSON)")
            continue
        out.append(TemplateVariable(name, required, None if required else default, description))
    return tuple(out)


def _parts(
    r: Reader,
    data: dict[str, Any],
    channel: str,
    declared: set[str] | None,
    lines: list[str],
) -> tuple[tuple[TemplatePart, ...], frozenset[str] | None] | None:
    """The channel's parts compiled, and the profile fields they read; None when any has a problem.
    ``declared``: the variables' names (None: ``variables`` has problems, the names read are not
    checked)."""
    own = PARTS[channel]
    ok = True
    for name in _ALL_PARTS:
        if name in data and name not in own:
            r.error((name,), f"not a part of {channel} templates; theirs: {', '.join(own)}")
            ok = False
    for name in _REQUIRED_PARTS[channel]:
        if name not in data:
            r.error((name,), f"required field is missing (a {channel} template's {name})")
            ok = False
    if channel == "email" and "html" not in data and "text" not in data:
        r.error(("text",), "required field is missing: an email template has 'text', 'html' or both")
        ok = False
    compiled: list[TemplatePart] = []
    fields: set[str] | None = set()
    for name in own:
        if name not in data:
            continue
        if name == "data":
            found = _data(r, data["data"], channel, declared, lines)
            if found is None:
                ok = False
                continue
            for part, read in found:
                compiled.append(part)
                fields = None if fields is None or read is None else fields | read
            continue
        result = _part(r, data, (name,), name, channel, declared, lines)
        if result is None:
            ok = False
            continue
        compiled.append(result[0])
        fields = None if fields is None or result[1] is None else fields | result[1]
    if not ok:
        return None
    return tuple(compiled), None if fields is None else frozenset(fields)


def _data(
    r: Reader, value: Any, channel: str, declared: set[str] | None, lines: list[str]
) -> list[tuple[TemplatePart, frozenset[str] | None]] | None:
    """A push's ``data``: key -> text (each a template)."""
    path: Path = ("data",)
    if not isinstance(value, dict):
        r.error(path, "expected a mapping of key: text")
        return None
    if len(value) > MAX_DATA_KEYS:
        r.error(path, f"{len(value)} keys, more than the limit of {MAX_DATA_KEYS}")
        return None
    out: list[tuple[TemplatePart, frozenset[str] | None]] = []
    ok = True
    for key in value:
        if not DATA_KEY_RE.match(key):
            r.error((*path, key), f"{key!r} is not a data key (letters, digits, _, . and -; up to 64)")
            ok = False
            continue
        found = _part(r, value, (*path, key), f"data.{key}", channel, declared, lines, limit_of="data")
        if found is None:
            ok = False
        else:
            out.append(found)
    return out if ok else None


def _part(
    r: Reader,
    data: dict[str, Any],
    path: Path,
    name: str,
    channel: str,
    declared: set[str] | None,
    lines: list[str],
    *,
    limit_of: str | None = None,
) -> tuple[TemplatePart, frozenset[str] | None] | None:
    """One part's text compiled: (the part, the profile fields it reads); None when it has problems."""
    source = data[str(path[-1])]
    if not isinstance(source, str):
        r.error(path, "expected text" + (" (quote it)" if isinstance(source, int | float) else ""))
        return None
    if not source.strip():
        r.error(path, "must not be empty")
        return None
    text_limit, rendered_limit = PART_LIMITS[(channel, limit_of or name)]
    if len(source) > text_limit:
        r.error(path, f"{len(source)} characters, more than the limit of {text_limit}")
        return None
    start = _content_line(r, path, lines)
    env = environment(html=name == "html")
    before = len(r.problems)

    def problem(jinja_line: int | None, message: str) -> None:
        r.error(path, message, line=start + max((jinja_line or 1) - 1, 0))

    try:
        ast = env.parse(source)
    except TemplateSyntaxError as exc:
        problem(exc.lineno, f"template syntax: {exc.message}")
        return None
    for jinja_line, message in static_problems(ast, env.tests):
        problem(jinja_line, message)
    if len(r.problems) > before:
        return None
    try:
        names = meta.find_undeclared_variables(ast)
    except TemplateError as exc:
        problem(getattr(exc, "lineno", None), f"template: {exc.message or exc}")
        return None
    for unknown in sorted(names - (declared or names) - {"profile"}):
        hint = (
            f" (did you mean 'profile.{unknown}'?)"
            if unknown in _PROFILE_HINTS
            else did_you_mean(unknown, declared or ())
        )
        problem(
            _first_line(ast, unknown),
            f"variable {unknown!r} is not declared{hint}: declare it under 'variables' (required: true, or "
            "a default), or read the profile as profile.<field>",
        )
    if len(r.problems) > before:
        return None
    read = _profile_fields(ast)
    try:
        compiled = env.from_string(prepare(ast))
    except TemplateError as exc:
        problem(getattr(exc, "lineno", None), f"template: {exc.message or exc}")
        return None
    part = TemplatePart(
        name=name,
        source=source,
        compiled=compiled,
        max_chars=rendered_limit,
        one_line=name in ("subject", "title"),
        line=start,
    )
    return part, read


def _content_line(r: Reader, path: Path, lines: list[str]) -> int:
    """The file's line of the part's first text line: the value's line, or the next one for a block
    scalar (``html: |``)."""
    line = r.doc.line(path)
    if 0 < line <= len(lines) and _BLOCK_SCALAR.search(lines[line - 1].rstrip()):
        return line + 1
    return line


def _first_line(ast: nodes.Template, name: str) -> int:
    return min((n.lineno for n in ast.find_all(nodes.Name) if n.name == name), default=1)


def _profile_fields(ast: nodes.Template) -> frozenset[str] | None:
    """The fields of ``profile`` read as ``profile.x`` or ``profile["x"]``; None when ``profile`` is
    read any other way (as a whole)."""
    fields: set[str] = set()
    direct: set[int] = set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        subject = node.node  # type: ignore[attr-defined]
        if not (isinstance(subject, nodes.Name) and subject.name == "profile"):
            continue
        if isinstance(node, nodes.Getattr):
            fields.add(node.attr)
            direct.add(id(subject))
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            fields.add(node.arg.value)
            direct.add(id(subject))
    for name in ast.find_all(nodes.Name):
        if name.name == "profile" and name.ctx == "load" and id(name) not in direct:
            return None
    return frozenset(fields)


def _content_hash(data: dict[str, Any]) -> str:
    meaning = {k: v for k, v in data.items() if k not in ("name", "description")}
    return hashlib.blake2b(orjson.dumps(meaning, option=orjson.OPT_SORT_KEYS), digest_size=12).hexdigest()
