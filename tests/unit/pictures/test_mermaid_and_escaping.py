"""The mermaid flowchart of every example journey (ids, edges, labels, counts); hostile names and CEL
texts (quotes, <, >, &, backslashes) survive DOT, SVG and mermaid as text, never as markup; without
Graphviz's dot the error names the package, and the texts still work."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from picture_helpers import (
    example_counts,
    example_journeys,
    needs_dot,
    read_mermaid,
    read_svg,
)

from orchestrator.cli import main
from orchestrator.core.journey import BranchStep, JourneyDefinition, SendStep, WaitStep, load_journey_file
from orchestrator.exceptions import GraphvizMissingError
from orchestrator.pictures import journey_graph, journey_svg, render_svg, to_dot, to_mermaid
from orchestrator.pictures.mermaid import mermaid_ids

FILES = example_journeys()
WELCOME = FILES[[p.stem for p in FILES].index("welcome")]


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_mermaid_has_every_node_and_edge_with_its_label(path: Path) -> None:
    graph = journey_graph(load_journey_file(path))
    ids = mermaid_ids(graph)
    pic = read_mermaid(to_mermaid(graph))
    assert set(pic.nodes) == set(ids.values())
    assert all(re.fullmatch(r"\w+", i) for i in ids.values())
    for node in graph.nodes:
        assert pic.nodes[ids[node.id]][1] == [" ".join(x.split()) for x in node.lines]
    assert [(a, b) for a, _, b, _ in pic.edges] == [(ids[e.source], ids[e.target]) for e in graph.edges]
    for (_, arrow, _, label), edge in zip(pic.edges, graph.edges, strict=True):
        assert label == list(edge.label)
        assert arrow == {"start": "==>", "timeout": "-.->", "default": "-.->", "holdout": "-.->"}.get(
            edge.kind, "-->"
        )


def test_mermaid_shapes_differ_by_step_type() -> None:
    pic = read_mermaid(to_mermaid(journey_graph(load_journey_file(WELCOME))))
    assert pic.nodes["entry"][0] == ">"
    assert pic.nodes["s_welcome_email"][0] == "("
    assert pic.nodes["s_wait_open"][0] == "{{"
    assert pic.nodes["s_sms_allowed"][0] == "{"
    assert pic.nodes["s_opened"][0] == "(["
    assert pic.nodes["goal_1"][0] == "[["


def test_mermaid_counts_are_on_the_right_nodes_and_edges() -> None:
    counts = example_counts("abandoned_cart", until=False)
    graph = journey_graph(load_journey_file(FILES[[p.stem for p in FILES].index("abandoned_cart")]))
    ids = mermaid_ids(graph)
    pic = read_mermaid(to_mermaid(graph, counts))
    for step, n in counts["steps"].items():
        assert f"{n} arrived" in pic.nodes[ids[step]][1]
    for step, n in counts["occupancy"].items():
        assert f"now: {n}" in pic.nodes[ids[step]][1]
    edges = {(a, b): label for a, _, b, label in pic.edges}
    for key, n in counts["edges"].items():
        source, target = key.split(">")
        assert str(n) in edges[(ids[source or "@entry"], ids[target])]
    assert f"entered {counts['entered']}" in pic.nodes["totals"][1]


HOSTILE_STEP = 'we"l<c>&o\\me'
HOSTILE_NAME = "Evil \"name\" <script>alert(1)</script> & 'co' #1 | `x`"
HOSTILE_CEL = 'profile.x < 3 && profile.y > 2 || profile.z == "<b>&amp;</b>" #x | `y`'


def _hostile() -> JourneyDefinition:
    d = load_journey_file(WELCOME)
    email = d.steps["welcome_email"]
    branch = d.steps["sms_allowed"]
    wait = d.steps["wait_open"]
    assert isinstance(email, SendStep)
    assert isinstance(branch, BranchStep)
    assert isinstance(wait, WaitStep)
    cond = dataclasses.replace(branch.branches[0][0], source=HOSTILE_CEL)
    steps = {
        HOSTILE_STEP: dataclasses.replace(email, id=HOSTILE_STEP, template='t"<&>'),
        **{k: v for k, v in d.steps.items() if k != "welcome_email"},
        "sms_allowed": dataclasses.replace(branch, branches=((cond, "welcome_sms"),)),
        "wait_open": dataclasses.replace(wait, of_step=HOSTILE_STEP),
    }
    return dataclasses.replace(d, name=HOSTILE_NAME, start=HOSTILE_STEP, steps=steps)


def test_dot_escapes_hostile_names_and_conditions() -> None:
    dot = to_dot(journey_graph(_hostile()))
    assert "<script>" not in dot
    assert "<b>&amp;" not in dot
    assert '"we\\"l<c>&o\\\\me"' in dot  # the node id: a DOT string, quotes and backslashes escaped
    assert "Evil &quot;name&quot; &lt;script&gt;alert(1)&lt;/script&gt; &amp; &#39;co&#39;" in dot
    assert "profile.x &lt; 3 &amp;&amp; profile.y &gt; 2" in dot


@needs_dot
def test_hostile_names_come_out_of_dot_as_the_same_text() -> None:
    d = _hostile()
    svg = journey_svg(d, example_counts("welcome"))
    pic = read_svg(svg)  # (valid XML)
    node = HOSTILE_STEP.replace("\\", "\\\\")  # (a DOT id keeps its escaped backslash as two)
    assert f"send: {HOSTILE_STEP}" in pic.nodes[node]
    assert f"@entry->{node}" in pic.edges
    assert " ".join(pic.title) == f"{' '.join(HOSTILE_NAME.split())} welcome v1"
    assert " ".join(HOSTILE_CEL.split()) in pic.edge_text("sms_allowed->welcome_sms")
    assert not any(el.tag.endswith(("script", "b")) for el in ET.fromstring(svg).iter())


def test_mermaid_escapes_hostile_names_and_conditions() -> None:
    d = _hostile()
    text = to_mermaid(journey_graph(d))
    assert "<script>" not in text
    assert '"<b>&' not in text
    pic = read_mermaid(text)  # (every line still parses: no quote or bracket broke out)
    ids = mermaid_ids(journey_graph(d))
    assert re.fullmatch(r"\w+", ids[HOSTILE_STEP])
    assert pic.nodes[ids[HOSTILE_STEP]][1][0] == f"send: {HOSTILE_STEP}"
    label = next(lbl for a, _, b, lbl in pic.edges if a == ids["sms_allowed"] and b == ids["welcome_sms"])
    assert label == [HOSTILE_CEL]
    assert not set("|`") & set(re.sub(r'\|"|"\|', "", text))  # (only the edge labels' delimiters)
    title = "".join(f"#{ord(c)};" if c in '"#&<>|`' else c for c in HOSTILE_NAME)
    assert f"  %% {title} (welcome v1)" in text


def _no_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("dot") is None


def test_without_dot_the_error_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_dot(tmp_path, monkeypatch)
    with pytest.raises(GraphvizMissingError, match="Debian package graphviz"):
        render_svg("digraph { a -> b }")
    with pytest.raises(GraphvizMissingError, match="--format dot or --format mermaid"):
        journey_svg(load_journey_file(WELCOME))


def test_without_dot_the_command_says_so_and_the_texts_still_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_dot(tmp_path, monkeypatch)
    assert main(["graph", str(WELCOME), "-o", str(tmp_path / "w.svg")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("orchestrator graph: error: Graphviz's 'dot' program is not installed")
    assert "graphviz" in err
    assert not (tmp_path / "w.svg").exists()
    assert main(["graph", str(WELCOME), "--format", "mermaid", "-o", str(tmp_path / "w.mmd")]) == 0
    assert (tmp_path / "w.mmd").read_text().startswith("flowchart TD\n")
    assert main(["graph", str(WELCOME), "-o", str(tmp_path / "w.dot")]) == 0  # (the format of .dot)
    assert (tmp_path / "w.dot").read_text().startswith("digraph journey {")


@needs_dot
def test_a_failing_dot_says_why() -> None:
    from orchestrator.exceptions import PictureError

    with pytest.raises(PictureError, match=r"Graphviz's dot failed: .*syntax error"):
        render_svg("digraph { a -> }")


@needs_dot
def test_the_svg_is_what_dot_makes_of_the_dot_source() -> None:
    d = load_journey_file(WELCOME)
    source = to_dot(journey_graph(d))
    made = subprocess.run(["dot", "-Tsvg"], input=source, capture_output=True, text=True, check=True).stdout
    assert journey_svg(d) == made
