"""Rendering a template for one message: the API the channel connectors call.

What a template sees: its declared variables — the action's ``personalization`` value of each name, else
the variable's default — and ``profile``, a view of the customer's profile (:func:`profile_view`: what
conditions read as ``profile``; empty when the renderer has none). Every part renders whole or the
message is not made: :class:`~orchestrator.exceptions.TemplateRenderError` says why (``reason``) and,
for a missing value, which (``variable``). A connector dead-letters the action with that reason.

- :func:`render` — a template and an action (what a connector does once it has the template);
- :func:`render_action` — the action's template looked up in a :class:`TemplateRegistry` first: the
  version the action names (``template_version``), else the version in force at its ``created_at``;
- :func:`render_values` — a template and personalization values (``orchestrator template render``);
- :func:`stamp` — the action with the version it was rendered with (``template_version``).

Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from jinja2.exceptions import SecurityError

from orchestrator.contracts.actions import ChannelAction
from orchestrator.core.profile import Profile
from orchestrator.core.template.model import RenderedMessage, TemplateDefinition, TemplatePart
from orchestrator.core.template.sandbox import BUDGET, MissingValue, OverLimit
from orchestrator.exceptions import TemplateRenderError

if TYPE_CHECKING:
    from orchestrator.core.template.registry import TemplateRegistry

__all__ = ["profile_view", "render", "render_action", "render_values", "stamp"]

_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")
_SEARCHED = 10_000
"""Values looked through to name the container of a missing field (its path, for the message)."""


def profile_view(profile: Profile | None) -> dict[str, Any]:
    """The ``profile`` a template reads: the one conditions read (attributes at the top —
    ``profile.first_name`` —, ``email``, ``phone``, ``timezone``, ``consent``, ``segments``,
    ``engagement`` ...); empty without a profile."""
    return {} if profile is None else profile.cel_view()


def render(
    template: TemplateDefinition, action: ChannelAction, profile: Mapping[str, Any] | None = None
) -> RenderedMessage:
    """``template`` rendered for ``action`` (its personalization) and the customer's ``profile`` view.
    Raises TemplateRenderError: the action names another template, version or channel (``no_template``,
    ``channel``), or a part cannot be rendered whole."""
    if action.template_id != template.id or (
        action.template_version is not None and action.template_version != template.version
    ):
        named = action.template_id + (f" v{action.template_version}" if action.template_version else "")
        raise TemplateRenderError(
            f"the action names template {named}",
            template_id=template.id,
            version=template.version,
            reason="no_template",
        )
    if action.channel != template.channel:
        raise TemplateRenderError(
            f"is a {template.channel} template, the action goes by {action.channel} (a fallback of the "
            "policy moves a send to another channel: its template must exist for that channel too)",
            template_id=template.id,
            version=template.version,
            reason="channel",
        )
    return render_values(template, action.personalization, profile)


def render_action(
    templates: TemplateRegistry, action: ChannelAction, profile: Mapping[str, Any] | None = None
) -> RenderedMessage:
    """The action's template (:meth:`TemplateRegistry.for_action`) rendered for it (:func:`render`)."""
    return render(templates.for_action(action), action, profile)


def stamp(action: ChannelAction, message: RenderedMessage) -> ChannelAction:
    """``action`` naming the template version ``message`` was rendered with (``template_version``)."""
    return action.model_copy(update={"template_version": message.template_version})


def render_values(
    template: TemplateDefinition,
    personalization: Mapping[str, Any] | None,
    profile: Mapping[str, Any] | None = None,
) -> RenderedMessage:
    """Every part of ``template`` rendered with the variables from ``personalization`` (a value of None
    counts as missing) and ``profile``; raises TemplateRenderError when any part cannot be."""
    given = personalization or {}
    values: dict[str, Any] = {}
    missing: list[str] = []
    for variable in template.variables:
        value = given.get(variable.name)
        if value is None:
            if variable.required:
                missing.append(variable.name)
                continue
            value = variable.default
        values[variable.name] = value
    if missing:
        names = ", ".join(repr(m) for m in missing)
        has = ", ".join(sorted(given)) or "nothing"
        raise TemplateRenderError(
            f"required variable{'s' if len(missing) > 1 else ''} {names} missing: the personalization "
            f"gives none (it has: {has})",
            template_id=template.id,
            version=template.version,
            reason="missing_variable",
            variable=missing[0],
        )
    context: dict[str, Any] = {**values, "profile": profile if profile is not None else {}, BUDGET: [0]}
    parts: dict[str, str] = {}
    data: dict[str, str] = {}
    for part in template.parts:
        text = _render_part(template, part, context)
        if part.name.startswith("data."):
            data[part.name[len("data.") :]] = text
        else:
            parts[part.name] = text
    return RenderedMessage(template.id, template.version, template.channel, parts, data)


def _render_part(template: TemplateDefinition, part: TemplatePart, context: dict[str, Any]) -> str:
    def fail(detail: str, reason: str, variable: str | None = None) -> TemplateRenderError:
        return TemplateRenderError(
            detail,
            template_id=template.id,
            version=template.version,
            reason=reason,
            part=part.name,
            variable=variable,
        )

    chunks: list[str] = []
    size = 0
    try:
        for chunk in part.compiled.generate(context):
            size += len(chunk)
            if size > part.max_chars:
                raise fail(f"renders to more than {part.max_chars} characters", "over_limit")
            chunks.append(chunk)
    except TemplateRenderError:
        raise
    except MissingValue as exc:
        name = _path_of(exc, context)
        raise fail(
            f"{name!r} is missing (to allow that: {{{{ {name}|default('...') }}}} or "
            f"{{% if {name} is defined %}})",
            "missing_variable",
            name,
        ) from None
    except OverLimit as exc:
        raise fail(str(exc), "over_limit") from None
    except SecurityError as exc:
        raise fail(f"refused: {exc}", "refused") from None
    except RecursionError:
        raise fail("nested too deep", "error") from None
    except Exception as exc:  # a template must never stop its caller: any failure is a refusal of the message
        raise fail(f"{type(exc).__name__}: {exc}"[:500], "error") from None
    text = "".join(chunks)
    if part.one_line:
        text = _LINE_BREAKS.sub(" ", text)
    text = text.strip()
    if not text:
        raise fail("renders to nothing", "empty")
    return text


def _path_of(exc: MissingValue, context: dict[str, Any]) -> str:
    """``profile.first_name``, ``order.items[0].price``: where the missing value is, found by looking
    for its container among the render's values (a breadth-first walk of at most a few thousand)."""
    name = exc.name
    if exc.container is None:
        return str(name)
    queue: list[tuple[str, Any]] = [(k, v) for k, v in context.items() if k != BUDGET]
    looked = 0
    while queue and looked < _SEARCHED:
        path, value = queue.pop(0)
        looked += 1
        if value is exc.container:
            return path + _step(name)
        if isinstance(value, Mapping):
            queue += [(path + _step(k), v) for k, v in value.items()]
        elif isinstance(value, list | tuple):
            queue += [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    return str(name)


def _step(name: Any) -> str:
    if isinstance(name, str) and name.isidentifier():
        return f".{name}"
    return f"[{name!r}]"
