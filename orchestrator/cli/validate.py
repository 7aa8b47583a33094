"""``orchestrator validate PATH...``: check journey, policy, segment, campaign and template files and report
every problem.

A file with ``kind: policy`` at its top level is a cross-channel policy (docs/policy.md), one with
``kind: segment`` a segment (docs/segments.md), one with ``kind: campaign`` a campaign
(docs/campaigns.md), one with ``kind: template`` a message template (docs/templates.md); every other YAML
file is a journey (schema, graph, CEL).
When segment files are among those checked, the segments journeys and campaigns name must be among them,
and the segments must not read each other in a cycle. When journey files are, the journey a campaign
enters must be among them. When template files are, the template each send of a journey or campaign
names must be among them, on the send's channel, and the send's personalization must give every variable
the template requires.
Given journeys or campaigns and a policy together, each send's ``subscription_group`` must be a group of
the policy on the send's channel.

Exit 0 with a one-line summary per file when all are clean; exit 1 with all problems of all files on
stderr (each ``file:line: field: message``) when any.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from orchestrator.core.campaign import (
    CampaignDefinition,
    CampaignRegistry,
    is_campaign_file,
    load_campaign_file,
)
from orchestrator.core.engine.clock import iso_from_ms, utc_from_ms
from orchestrator.core.journey.durations import format_duration, parse_duration
from orchestrator.core.journey.loader import DEFAULT_HISTORY_WINDOW_MS, load_journey_file
from orchestrator.core.journey.model import JourneyDefinition, SendStep
from orchestrator.core.journey.reader import did_you_mean
from orchestrator.core.journey.yamlsrc import compose_text, read_source
from orchestrator.core.learning.loader import is_model_file, load_model_file
from orchestrator.core.learning.model import EngagementModel
from orchestrator.core.policy import Policy, is_policy_file, load_policy_file
from orchestrator.core.segment import SegmentDefinition, SegmentRegistry, is_segment_file, load_segment_file
from orchestrator.core.segment.analysis import analyse
from orchestrator.core.template import TemplateDefinition, is_template_file, load_template_file
from orchestrator.core.template.checks import mismatches, sends_of, unknown_template
from orchestrator.exceptions import (
    CampaignValidationError,
    JourneyValidationError,
    ModelValidationError,
    PolicyValidationError,
    SegmentValidationError,
    TemplateValidationError,
)

__all__ = [
    "campaign_problems",
    "campaign_summary",
    "journey_files",
    "model_summary",
    "policy_summary",
    "register",
    "segment_summary",
    "subscription_problems",
    "summary",
    "template_problems",
    "template_summary",
    "validate_command",
    "validate_paths",
]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check journey, policy, segment, campaign and template files and report every problem",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="journey files or directories")
    parser.add_argument(
        "--history-window",
        default=format_duration(DEFAULT_HISTORY_WINDOW_MS),
        help="event history the engine keeps; conditions may not look further back (default 30d)",
    )
    parser.set_defaults(func=validate_command)


def journey_files(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Files named, plus ``*.yaml``/``*.yml`` in directories named; and problems for missing paths."""
    files: list[Path] = []
    problems: list[str] = []
    for p in paths:
        if p.is_dir():
            found = sorted([*p.glob("*.yaml"), *p.glob("*.yml")])
            if not found:
                problems.append(f"{p}:1: (root): no journey files (*.yaml) in this directory")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            problems.append(f"{p}:1: (root): no such file or directory")
    return files, problems


def summary(d: JourneyDefinition) -> str:
    kinds: dict[str, int] = {}
    for s in d.steps.values():
        kinds[s.kind] = kinds.get(s.kind, 0) + 1
    steps = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    trigger = (
        f"segment {d.entry.segment}" if d.entry.segment else ", ".join(sorted(d.entry.events)) or "condition"
    )
    head = f"{d.source_name}: ok: {d.id} v{d.version} ({d.status})"
    return f"{head}, entry on {trigger}, {len(d.steps)} steps ({steps})"


def policy_summary(p: Policy) -> str:
    parts = [
        f"{len(p.caps)} cap(s)",
        "quiet hours " + (f"{p.quiet_hours.action}" if p.quiet_hours else "none"),
        f"{len(p.engagement)} suppression rule(s)",
        f"fallback for {', '.join(sorted(p.fallback)) or 'no channel'}",
        f"rate limits for {', '.join(sorted(p.rate_limits)) or 'no channel'}",
    ]
    if p.subscription_groups:
        parts.append(f"{len(p.subscription_groups)} subscription group(s)")
    return f"{p.source_name}: ok: policy {p.id} v{p.version}, " + ", ".join(parts)


def segment_summary(d: SegmentDefinition) -> str:
    parts = [
        "re-checked as counted events leave their windows" if d.time_dependent else "changes on events only",
        f"reads segments {', '.join(sorted(d.depends_on))}" if d.depends_on else "reads no other segment",
    ]
    return f"{d.source_name}: ok: segment {d.id} v{d.version} ({d.status}), " + ", ".join(parts)


def campaign_summary(d: CampaignDefinition) -> str:
    """``<file>: ok: campaign <id> v<n> (<status>), to segment <s>, <what>, <when>``, then
    ``, every <n> days x<k>`` for a recurring campaign (docs/campaigns.md shows examples)."""
    what = f"{d.send.channel} template {d.send.template}" if d.send else f"journey {d.journey}"
    schedule = d.schedule
    if schedule.at_ms is not None:
        when = "at " + utc_from_ms(schedule.at_ms).isoformat().replace("+00:00", "Z")
    else:
        hour, minute = schedule.local_time or (0, 0)
        day = (date(1970, 1, 1) + timedelta(days=schedule.local_day or 0)).isoformat()
        unknown = schedule.default_timezone or "UTC"
        when = f"at {hour:02d}:{minute:02d} local on {day} (unknown zones: {unknown})"
    parts = [f"to segment {d.segment}", what, when]
    if schedule.every_days is not None:
        days = "day" if schedule.every_days == 1 else f"{schedule.every_days} days"
        parts.append(f"every {days} x{schedule.occurrences}")
    return f"{d.source_name}: ok: campaign {d.id} v{d.version} ({d.status}), " + ", ".join(parts)


def template_summary(t: TemplateDefinition) -> str:
    """``<file>: ok: template <id> v<n> (<channel>): <parts>; variables <...>; reads profile <...>``."""
    parts = ", ".join(p.name for p in t.parts)
    variables = ", ".join(
        f"{v.name} (required)" if v.required else f"{v.name} (default {v.default!r})" for v in t.variables
    )
    out = f"{t.source_name}: ok: template {t.id} v{t.version} ({t.channel}): {parts}"
    out += f"; variables {variables}" if variables else "; no variables"
    if t.profile_fields is None:
        out += "; reads the whole profile"
    elif t.profile_fields:
        out += f"; reads profile {', '.join(sorted(t.profile_fields))}"
    return out


def template_problems(
    definitions: list[JourneyDefinition | CampaignDefinition], templates: list[TemplateDefinition]
) -> list[str]:
    """Each send of the journeys and campaigns against the templates given (none given: not checked): the
    template it names among them, of the send's channel, and every variable each version of it requires
    given by the send's personalization (``file:line: field: message``)."""
    if not templates:
        return []
    by_id: dict[str, list[TemplateDefinition]] = {}
    for t in templates:
        by_id.setdefault(t.id, []).append(t)
    problems: list[str] = []
    for d in definitions:
        for send in sends_of(d):
            versions = by_id.get(send.step.template)
            if versions is None:
                where = _where(send.source_name, (*send.path, "template"))
                problems.append(
                    f"{where}: {unknown_template(send.step.template, by_id, 'the template files checked')}"
                )
                continue
            for t in sorted(versions, key=lambda t: t.version):
                problems += [
                    f"{_where(send.source_name, (*send.path, m.field))}: {m.message}"
                    for m in mismatches(send, t)
                ]
    return problems


def _segment_references(d: JourneyDefinition) -> list[tuple[str, str]]:
    """(field, segment) of each segment a journey names."""
    out = [("entry.segment", d.entry.segment)] if d.entry.segment else []
    for name, rules in (("goals", d.goals), ("exit_when", d.exits)):
        out += [(f"{name}[{r.name}]", r.segment) for r in rules if r.segment]
    return out


def _where(source_name: str, path: tuple[str, ...]) -> str:
    """``file:line: field`` of ``path`` in the file (its key's line, read again; 1 when it cannot be)."""
    text, _ = read_source(source_name)
    line = compose_text(text, source_name).key_line(path) if text is not None else 1
    return f"{source_name}:{line}: {'.'.join(path)}"


def _group_problems(where: str, step: SendStep, policies: list[Policy]) -> list[str]:
    """``step``'s subscription group against each policy: defined there, on the step's channel."""
    gid = step.subscription_group
    assert gid is not None
    problems: list[str] = []
    for policy in policies:
        group = policy.subscription_groups.get(gid)
        named_in = f"policy {policy.key} ({policy.source_name})"
        if group is None:
            hint = did_you_mean(gid, policy.subscription_groups)
            known = ", ".join(policy.subscription_groups) or "none"
            problems.append(f"{where}: no subscription group {gid!r}{hint} in {named_in}; defined: {known}")
        elif group.channel != step.channel:
            problems.append(
                f"{where}: subscription group {gid!r} is on {group.channel} in {named_in}, "
                f"but this step sends by {step.channel}"
            )
    return problems


def subscription_problems(journeys: list[JourneyDefinition], policies: list[Policy]) -> list[str]:
    """Each send step's ``subscription_group`` checked against each policy: a group the policy does not
    define, or defines on another channel than the step's, is a problem (``file:line: field: message``)."""
    problems: list[str] = []
    for d in journeys:
        named = [s for s in d.steps.values() if isinstance(s, SendStep) and s.subscription_group]
        if not named or not policies:
            continue
        for step in named:
            where = _where(d.source_name, ("steps", step.id, "subscription_group"))
            problems += _group_problems(where, step, policies)
    return problems


def campaign_problems(
    campaigns: list[CampaignDefinition],
    segments: list[str],
    journeys: list[str],
    policies: list[Policy],
) -> list[str]:
    """What campaigns name, checked against the other files given: their segments (the audience's and
    those its condition reads) among ``segments``, their journey among ``journeys``, their send's
    subscription group in each policy. An empty list of segments or journeys is not checked."""
    problems: list[str] = []
    for d in campaigns:
        if segments:
            named = [(("audience", "segment"), d.segment)]
            if d.condition is not None:
                named += [
                    (("audience", "condition"), s) for s in sorted(analyse(d.condition.source).segments)
                ]
            for path, sid in named:
                if sid not in segments:
                    problems.append(
                        f"{_where(d.source_name, path)}: segment {sid!r} is not among the segment files "
                        f"checked ({', '.join(segments)}){did_you_mean(sid, segments)}"
                    )
        if journeys and d.journey is not None and d.journey not in journeys:
            problems.append(
                f"{_where(d.source_name, ('journey',))}: journey {d.journey!r} is not among the journey "
                f"files checked ({', '.join(journeys)}){did_you_mean(d.journey, journeys)}"
            )
        if policies and d.send is not None and d.send.subscription_group:
            problems += _group_problems(
                _where(d.source_name, ("send", "subscription_group")), d.send, policies
            )
    return problems


def model_summary(model: EngagementModel) -> str:
    """One line for a clean model file: its range, what it read, its channels and splits."""
    read = ", ".join(f"{n} {k}" for k, n in model.counts.items()) or "no counts"
    channels = (
        ", ".join(f"{ch} {s.sends} sends {s.rate:.1%}" for ch, s in model.channels.items()) or "no channels"
    )
    splits = sum(len(steps) for steps in model.splits.values())
    fitted = f"{iso_from_ms(model.fitted_from_ms)} to {iso_from_ms(model.fitted_to_ms)}"
    return (
        f"{model.source_name}: ok: model {model.id} v{model.version}: fitted {fitted} "
        f"({read}); {channels}; hours for {len(model.hours)} channels; "
        f"{splits} splits"
    )


def validate_paths(
    paths: list[Path], history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS
) -> tuple[list[str], list[str]]:
    """(summaries of clean files, problems of all files)."""
    files, problems = journey_files(paths)
    summaries: list[str] = []
    seen: dict[tuple[str, int], str] = {}
    policies: dict[str, str] = {}
    segments = SegmentRegistry(history_window_ms=history_window_ms)
    campaigns = CampaignRegistry(history_window_ms=history_window_ms)
    campaign_files: dict[tuple[str, int], str] = {}
    journeys: list[JourneyDefinition] = []
    loaded_policies: list[Policy] = []
    loaded_campaigns: list[CampaignDefinition] = []
    templates: dict[tuple[str, int], TemplateDefinition] = {}
    for f in files:
        if is_model_file(f):
            try:
                summaries.append(model_summary(load_model_file(f)))
            except ModelValidationError as exc:
                problems.extend(exc.problems)
            continue
        if is_template_file(f):
            try:
                template = load_template_file(f)
            except TemplateValidationError as exc:
                problems.extend(exc.problems)
                continue
            if template.key in templates:
                problems.append(
                    f"{f}:1: id: template {template.id} version {template.version} is also defined in "
                    f"{templates[template.key].source_name}"
                )
                continue
            templates[template.key] = template
            summaries.append(template_summary(template))
            continue
        if is_campaign_file(f):
            try:
                campaign = load_campaign_file(f, history_window_ms=history_window_ms)
                if campaign.key in campaign_files:
                    problems.append(
                        f"{f}:1: id: campaign {campaign.id} version {campaign.version} is also defined in "
                        f"{campaign_files[campaign.key]}"
                    )
                    continue
                campaigns.deploy(campaign, 0)
            except CampaignValidationError as exc:
                problems.extend(exc.problems)
                continue
            campaign_files[campaign.key] = str(f)
            loaded_campaigns.append(campaign)
            summaries.append(campaign_summary(campaign))
            continue
        if is_segment_file(f):
            try:
                segment = load_segment_file(f, history_window_ms=history_window_ms)
                segments.deploy(segment, 0)
            except SegmentValidationError as exc:
                problems.extend(exc.problems)
                continue
            summaries.append(segment_summary(segment))
            continue
        if is_policy_file(f):
            try:
                policy = load_policy_file(f)
            except PolicyValidationError as exc:
                problems.extend(exc.problems)
                continue
            if policy.key in policies:
                problems.append(f"{f}:1: id: policy {policy.key} is also defined in {policies[policy.key]}")
            policies[policy.key] = str(f)
            loaded_policies.append(policy)
            summaries.append(policy_summary(policy))
            continue
        try:
            d = load_journey_file(f, history_window_ms=history_window_ms)
        except JourneyValidationError as exc:
            problems.extend(exc.problems)
            continue
        other = seen.get(d.key)
        if other is not None:
            problems.append(f"{f}:1: id: {d.id} version {d.version} is also defined in {other}")
        seen[d.key] = str(f)
        journeys.append(d)
        summaries.append(summary(d))
    problems.extend(subscription_problems(journeys, loaded_policies))
    if len(segments):  # (segment files given: the segments journeys name must be among them)
        known = segments.segment_ids()
        for d in journeys:
            for where, name in _segment_references(d):
                if name not in known:
                    problems.append(
                        f"{d.source_name}:1: {where}: segment {name!r} is not among the segment files "
                        f"checked ({', '.join(known)}){did_you_mean(name, known)}"
                    )
    journey_ids = sorted({d.id for d in journeys})
    problems.extend(campaign_problems(loaded_campaigns, segments.segment_ids(), journey_ids, loaded_policies))
    problems.extend(template_problems([*journeys, *loaded_campaigns], list(templates.values())))
    return summaries, problems


def validate_command(args: argparse.Namespace) -> int:
    try:
        window = parse_duration(args.history_window)
    except ValueError as exc:
        print(f"orchestrator validate: --history-window: {exc}", file=sys.stderr)
        return 2
    summaries, problems = validate_paths(list(args.paths), window)
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    for line in summaries:
        print(line)
    return 0


if __name__ == "__main__":  # pragma: no cover - python -m orchestrator.cli.validate
    _parser = argparse.ArgumentParser(prog="orchestrator")
    register(_parser.add_subparsers(dest="command", required=True))
    _args = _parser.parse_args(["validate", *sys.argv[1:]])
    sys.exit(_args.func(_args))
