"""Message templates: what a send's message says, per channel (docs/templates.md).

A template file (``kind: template``) gives an email's subject, HTML and text, an SMS's body, or a push's
title, body and data, written with Jinja2 and rendered in its sandbox from the action's personalization
values and the customer's profile (:mod:`.render`); each variable it reads is declared, required or with
a default. Templates are validated and deployed with the journeys and versioned like them
(:class:`TemplateRegistry`); send steps name them by id (``template:``).
"""

from orchestrator.core.template.loader import (
    TEMPLATE_KIND,
    is_template_file,
    is_template_text,
    load_template_file,
    load_template_text,
)
from orchestrator.core.template.model import (
    PART_LIMITS,
    PARTS,
    RenderedMessage,
    TemplateChannel,
    TemplateDefinition,
    TemplatePart,
    TemplateVariable,
)
from orchestrator.core.template.registry import MAX_TEMPLATES, TemplateDeployment, TemplateRegistry
from orchestrator.core.template.render import profile_view, render, render_action, render_values, stamp

__all__ = [
    "MAX_TEMPLATES",
    "PARTS",
    "PART_LIMITS",
    "TEMPLATE_KIND",
    "RenderedMessage",
    "TemplateChannel",
    "TemplateDefinition",
    "TemplateDeployment",
    "TemplatePart",
    "TemplateRegistry",
    "TemplateVariable",
    "is_template_file",
    "is_template_text",
    "load_template_file",
    "load_template_text",
    "profile_view",
    "render",
    "render_action",
    "render_values",
    "stamp",
]
