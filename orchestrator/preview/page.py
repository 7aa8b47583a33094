"""The impact preview as one self-contained HTML page (``orchestrator diff --html OUT.html``).

The page has the report's sections (:func:`~orchestrator.preview.report.sections`: the same tables as
the text) and both journey pictures side by side (:func:`orchestrator.pictures.journey_svg`): the old
version with the old run's funnel counts, the new version with the new run's. Inline CSS, no script, no
link: it opens anywhere and can be mailed. Every text is HTML-escaped; the SVG comes from Graphviz's
``dot`` (which escapes the labels it is given). Without Graphviz the page is still written, with the
reason in place of each picture.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from orchestrator.core.journey.model import JourneyDefinition
from orchestrator.exceptions import PictureError, SimulationError
from orchestrator.pictures import inline_svg, journey_svg
from orchestrator.preview.diff import Preview
from orchestrator.preview.report import DEFAULT_LIMIT, Section, sections

__all__ = ["render_page", "write_page"]

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem; color: #1f2328; }
h1 { font-size: 1.3rem; margin: 0 0 .75rem; }
h2 { font-size: 1.05rem; margin: 1.5rem 0 .4rem; }
p.note { margin: .2rem 0 .5rem; color: #57606a; }
table { border-collapse: collapse; margin: .3rem 0 .6rem; }
th, td { padding: .2rem .6rem; border-bottom: 1px solid #d0d7de; text-align: left; white-space: nowrap; }
th { background: #f6f8fa; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
table.facts th { background: none; color: #57606a; font-weight: normal; }
.pictures { display: flex; gap: 1rem; align-items: flex-start; }
.picture { flex: 1 1 0; min-width: 0; border: 1px solid #d0d7de; border-radius: 6px; padding: .5rem; }
.picture h2 { margin-top: 0; }
.picture svg { max-width: 100%; height: auto; }
.missing { color: #9a6700; }
"""


def _cells(tag: str, values: list[str], right: set[int]) -> str:
    return "".join(
        f'<{tag} class="n">{escape(v)}</{tag}>' if i in right else f"<{tag}>{escape(v)}</{tag}>"
        for i, v in enumerate(values)
    )


def _section(s: Section, *, first: bool) -> str:
    out: list[str] = []
    if s.title:
        out.append(f"<h1>{escape(s.title)}</h1>" if first else f"<h2>{escape(s.title)}</h2>")
    out += [f'<p class="note">{escape(note)}</p>' for note in s.notes]
    if s.rows:
        if s.headless:
            body = "".join(f"<tr><th>{escape(r[0])}</th>{_cells('td', r[1:], set())}</tr>" for r in s.rows)
            out.append(f'<table class="facts">{body}</table>')
        else:
            head = f"<thead><tr>{_cells('th', s.headers, s.right)}</tr></thead>"
            body = "".join(f"<tr>{_cells('td', r, s.right)}</tr>" for r in s.rows)
            out.append(f"<table>{head}<tbody>{body}</tbody></table>")
    if s.more:
        out.append(f'<p class="note">{escape(s.more)}</p>')
    return "\n".join(out)


def _summary(counts: dict[str, Any]) -> str:
    """A run's counts in one line, under its picture."""
    parts = [f"entered {counts.get('entered', 0)}", f"converted {counts.get('converted', 0)}"]
    parts.append(f"actions {counts.get('actions', 0)}")
    parts += [f"exit {k} {n}" for k, n in sorted((counts.get("exits") or {}).items())]
    return ", ".join(parts)


def _picture(label: str, definition: JourneyDefinition, counts: dict[str, Any], problems: list[str]) -> str:
    try:
        svg = inline_svg(journey_svg(definition, counts))
    except PictureError as exc:
        problems.append(f"{label}: {exc}")
        svg = f'<p class="missing">picture not drawn: {escape(str(exc))}</p>'
    return (
        f'<div class="picture"><h2>{escape(label)}</h2>'
        f'<p class="note">{escape(_summary(counts))}</p>\n{svg}\n</div>'
    )


def render_page(p: Preview, *, limit: int = DEFAULT_LIMIT) -> tuple[str, list[str]]:
    """The page, and the pictures that could not be drawn (why)."""
    problems: list[str] = []
    jid = p.journey_id
    old_counts = p.old_run.funnel.to_dict().get(jid, {})
    new_counts = p.new_run.funnel.to_dict().get(jid, {})
    pictures = (
        '<div class="pictures">\n'
        + _picture(f"v{p.old.version}: the old run", p.old, old_counts, problems)
        + "\n"
        + _picture(f"v{p.new.version}: the new run", p.new, new_counts, problems)
        + "\n</div>"
    )
    parts = sections(p, limit=limit)
    body = [_section(parts[0], first=True), pictures, *(_section(s, first=False) for s in parts[1:])]
    title = f"Impact preview: {jid} v{p.old.version} -> v{p.new.version}"
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
    return page, problems


def write_page(path: Path | str, p: Preview, *, limit: int = DEFAULT_LIMIT) -> list[str]:
    """Write the page to ``path``; return the pictures that could not be drawn (why)."""
    page, problems = render_page(p, limit=limit)
    try:
        Path(path).write_text(page, encoding="utf-8")
    except OSError as exc:
        raise SimulationError(f"{path}: cannot write the page: {exc}") from None
    return problems
