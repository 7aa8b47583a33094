"""Graph checks of a journey: dangling references, unreachable steps, loops without a wait.

Journeys may loop and jump, but every loop must pass through a wait step, otherwise one event
could spin an instance forever.
"""

from __future__ import annotations

from orchestrator.core.journey.model import (
    BranchStep,
    JourneyDefinition,
    SendStep,
    SplitStep,
    Step,
    UpdateStep,
    WaitStep,
)
from orchestrator.core.journey.reader import Reader, did_you_mean
from orchestrator.core.journey.yamlsrc import Path

__all__ = ["check_graph", "edges"]


def edges(step: Step) -> list[tuple[Path, str]]:
    """The steps ``step`` can go to, each with the field path (under ``steps.<id>``) naming it."""
    out: list[tuple[Path, str]] = []
    if isinstance(step, SendStep | UpdateStep) and step.next:
        out.append((("next",), step.next))
    elif isinstance(step, WaitStep):
        if step.next:
            out.append((("next",), step.next))
        if step.timeout_next:
            out.append((("timeout", "next"), step.timeout_next))
    elif isinstance(step, BranchStep):
        out.extend((("branches", i, "next"), nxt) for i, (_, nxt) in enumerate(step.branches))
        out.append((("default",), step.default))
    elif isinstance(step, SplitStep):
        out.extend((("branches", i, "next"), b.next) for i, b in enumerate(step.branches) if b.next)
    return out


def check_graph(journey: JourneyDefinition, r: Reader) -> None:
    """Report every graph problem of ``journey`` through ``r``."""
    steps = journey.steps
    if journey.start not in steps and journey.start not in r.broken_steps:
        r.error(("start",), f"unknown step {journey.start!r}{did_you_mean(journey.start, steps)}")
    for sid, step in steps.items():
        for path, target in edges(step):
            if target in r.broken_steps:
                continue
            if target not in steps:
                r.error(("steps", sid, *path), f"unknown step {target!r}{did_you_mean(target, steps)}")
            elif target == sid and not isinstance(step, WaitStep):
                r.error(("steps", sid, *path), "a step cannot go to itself without a wait")
        if isinstance(step, WaitStep) and step.of_step is not None:
            target_step = steps.get(step.of_step)
            at = ("steps", sid, "until_event", "of")
            if target_step is None:
                r.error(at, f"unknown step {step.of_step!r}{did_you_mean(step.of_step, steps)}")
            elif not isinstance(target_step, SendStep):
                r.error(at, f"{step.of_step!r} is a {target_step.kind} step; 'of' must name a send step")
    if journey.start in steps:
        _unreachable(journey, r)
    _loops_without_wait(journey, r)
    _holdouts_send_nothing(journey, r)


def _reachable(journey: JourneyDefinition, start: str) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        step = journey.steps.get(todo.pop())
        if step is None:
            continue
        for _, target in edges(step):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _holdouts_send_nothing(journey: JourneyDefinition, r: Reader) -> None:
    """A holdout (control) group must never be sent anything, or it measures nothing."""
    for sid, step in journey.steps.items():
        if not isinstance(step, SplitStep):
            continue
        for i, branch in enumerate(step.branches):
            if not branch.holdout or branch.next is None:
                continue
            sends = sorted(
                s for s in _reachable(journey, branch.next) if isinstance(journey.steps.get(s), SendStep)
            )
            if sends:
                r.error(
                    ("steps", sid, "branches", i, "next"),
                    f"holdout branch {branch.name!r} leads to send step(s) {', '.join(sends)}; "
                    "a holdout must receive nothing",
                )


def _unreachable(journey: JourneyDefinition, r: Reader) -> None:
    if r.broken_steps:
        return  # reachability through a broken step is unknown
    seen = _reachable(journey, journey.start)
    for sid in journey.steps:
        if sid not in seen:
            r.error(("steps", sid), f"unreachable: no path from the start step {journey.start!r} leads here")


def _loops_without_wait(journey: JourneyDefinition, r: Reader) -> None:
    """Find cycles made only of non-wait steps (Tarjan's strongly connected components)."""
    steps = journey.steps
    graph = {
        sid: [t for _, t in edges(s) if t in steps and not isinstance(steps[t], WaitStep)]
        for sid, s in steps.items()
        if not isinstance(s, WaitStep)
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = 0

    def visit(root: str) -> None:
        nonlocal counter
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            succ = graph[node]
            if i < len(succ):
                work.append((node, i + 1))
                nxt = succ[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == node:
                        break
                if len(component) > 1:
                    order = [s for s in steps if s in component]
                    r.error(
                        ("steps", order[0]),
                        f"loop without a wait: {' -> '.join(order)} -> {order[0]} "
                        "(put a wait step in the loop)",
                    )
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])

    for sid in graph:
        if sid not in index:
            visit(sid)
