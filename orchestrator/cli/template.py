"""``orchestrator template render NAME``: preview a template as one customer would get it.

The template comes from the template files of a folder (``--templates``, default ``templates``): the
highest version, or ``--version N``. What it reads:

- ``--personalization name=value ...``: the values a send step would give (a value that reads as JSON —
  ``3``, ``true``, ``["a", "b"]``, ``"007"`` — is that value, anything else is text);
- the customer's profile, from ``orchestrator simulate --state-out`` (``--state STATE.json --customer
  KEY``, a key, an old key or ``kind:value``), or from ``--profile FILE.json`` (the attributes as
  ``profile.updated`` sets them — ``{"first_name": "Ann", "email": "ann@example.com"}`` — or a whole
  stored profile); without either the template sees an empty profile.

Prints every part (``--json``: as one object). A part that cannot be rendered — a missing variable, a
refusal of the sandbox — is what a connector would dead-letter: the reason is printed and the exit
status is 1. Exit 2 when the template, its folder or the customer cannot be found.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from orchestrator.core.journey.reader import did_you_mean
from orchestrator.core.profile import Profile, update_attributes
from orchestrator.core.template import (
    RenderedMessage,
    TemplateDefinition,
    TemplateRegistry,
    is_template_file,
    load_template_file,
    profile_view,
    render_values,
)
from orchestrator.exceptions import OrchestratorError, TemplateRenderError, TemplateValidationError
from orchestrator.simulate.state_file import read_state_file

__all__ = ["TemplateCommandError", "load_folder", "parse_personalization", "register"]


class TemplateCommandError(OrchestratorError):
    """The template, its folder, the customer or an option cannot be used."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("template", help="message templates: preview one (render)")
    sub = parser.add_subparsers(dest="template_command", metavar="SUBCOMMAND", required=True)
    render = sub.add_parser("render", help="render a template for one customer and print every part")
    render.add_argument("name", metavar="NAME", help="the template's id (what a send step's template: names)")
    render.add_argument(
        "--version", type=int, default=None, metavar="N", help="that version (default: the highest)"
    )
    render.add_argument(
        "--templates",
        type=Path,
        default=Path("templates"),
        metavar="DIR",
        help="the folder of template files (default: templates)",
    )
    render.add_argument("--customer", metavar="KEY", help="the customer whose profile to use (with --state)")
    source = render.add_mutually_exclusive_group()
    source.add_argument(
        "--state", type=Path, metavar="STATE.json", help="an `orchestrator simulate --state-out` file"
    )
    source.add_argument(
        "--profile", type=Path, metavar="FILE.json", help="a profile: its attributes as a JSON object"
    )
    render.add_argument(
        "--personalization",
        nargs="+",
        action="extend",
        default=[],
        metavar="NAME=VALUE",
        help="a value the send step would give (repeat or list several)",
    )
    render.add_argument("--json", action="store_true", help="print the rendered message as JSON")
    render.set_defaults(func=render_command)


def render_command(args: argparse.Namespace) -> int:
    registry, problems = load_folder(args.templates)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(
            f"{len(problems)} problem(s) in the template files of {args.templates} "
            f"(orchestrator validate {args.templates})",
            file=sys.stderr,
        )
        return 1
    template = _pick(registry, args.name, args.version, args.templates)
    personalization = parse_personalization(args.personalization)
    customer, profile = _profile(args)
    try:
        message = render_values(template, personalization, profile_view(profile))
    except TemplateRenderError as exc:
        print(f"{template.source_name}: {exc}", file=sys.stderr)
        if exc.reason == "missing_variable" and exc.variable and not exc.variable.startswith("profile."):
            print(f"(give it with --personalization {exc.variable}=...)", file=sys.stderr)
        print(f"not rendered ({exc.reason}): a connector would dead-letter this message", file=sys.stderr)
        return 1
    if args.json:
        print(orjson.dumps(message.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        print(_show(message, template, customer))
    return 0


def load_folder(folder: Path) -> tuple[TemplateRegistry, list[str]]:
    """Every template file of ``folder`` (``*.yaml``/``*.yml`` with ``kind: template``), each version in
    force always (the highest last); and the problems of the files that do not load."""
    if not folder.is_dir():
        raise TemplateCommandError(
            f"{folder}: no such folder (give the template files' folder with --templates)"
        )
    registry = TemplateRegistry()
    problems: list[str] = []
    loaded: list[TemplateDefinition] = []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        if not is_template_file(path):
            continue
        try:
            loaded.append(load_template_file(path))
        except TemplateValidationError as exc:
            problems.extend(exc.problems)
    for template in sorted(loaded, key=lambda t: (t.id, t.version)):
        try:
            registry.deploy(template, 0)
        except TemplateValidationError as exc:
            problems.extend(exc.problems)
    return registry, problems


def _pick(registry: TemplateRegistry, name: str, version: int | None, folder: Path) -> TemplateDefinition:
    if name not in registry:
        known = registry.template_ids()
        there = ", ".join(known) or "none"
        raise TemplateCommandError(
            f"no template {name!r} in {folder}{did_you_mean(name, known)}; there: {there}"
        )
    found = registry.latest(name) if version is None else registry.version(name, version)
    if found is None:
        versions = ", ".join(str(v) for v in registry.versions(name))
        raise TemplateCommandError(
            f"template {name} has no version {version} in {folder} (versions: {versions})"
        )
    return found


def parse_personalization(pairs: list[str]) -> dict[str, Any]:
    """``name=value`` pairs: a value that reads as JSON is that value, any other is text."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise TemplateCommandError(f"--personalization {pair!r}: write name=value")
        try:
            values[name.strip()] = orjson.loads(text)
        except orjson.JSONDecodeError:
            values[name.strip()] = text
    return values


def _profile(args: argparse.Namespace) -> tuple[str | None, Profile | None]:
    """(the customer's key, their profile) from --state/--customer or --profile; (None, None) without."""
    if args.state is not None:
        if not args.customer:
            raise TemplateCommandError("--state needs --customer KEY: whose profile to use")
        sim = read_state_file(args.state)
        key = sim.graph.lookup(args.customer) or args.customer
        state = sim.customers.get(key)
        if state is None:
            raise TemplateCommandError(f"no customer {args.customer!r} in {args.state}")
        return key, state.profile
    if args.profile is not None:
        try:
            data = orjson.loads(args.profile.read_bytes())
        except OSError as exc:
            raise TemplateCommandError(f"{args.profile}: cannot read: {exc.strerror or exc}") from None
        except orjson.JSONDecodeError as exc:
            raise TemplateCommandError(f"{args.profile}: not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise TemplateCommandError(f"{args.profile}: expected a JSON object (the profile's attributes)")
        key = args.customer or str(data.get("customer_key") or "preview")
        if isinstance(data.get("attributes"), dict) and "customer_key" in data:
            return key, Profile.from_dict(data)  # (a whole stored profile)
        profile = Profile(key)
        update_attributes(profile, data)
        return key, profile
    if args.customer:
        raise TemplateCommandError("--customer needs --state STATE.json (or give --profile FILE.json)")
    return None, None


def _show(message: RenderedMessage, template: TemplateDefinition, customer: str | None) -> str:
    head = f"template {template.id} v{template.version} ({template.channel}), {template.source_name}"
    lines = [head + (f", for customer {customer}" if customer else "")]
    for name, text in message.parts.items():
        if "\n" in text:
            lines += [f"--- {name}", text]
        else:
            lines.append(f"{name}: {text}")
    lines += [f"data.{key}: {value}" for key, value in message.data.items()]
    return "\n".join(lines)
