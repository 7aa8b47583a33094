"""DOT source to SVG through Graphviz's ``dot`` program (Debian package ``graphviz``), run as a
subprocess with a timeout. Without ``dot`` it raises :class:`GraphvizMissingError` naming the package;
the DOT and mermaid texts need no program.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from orchestrator.exceptions import GraphvizMissingError, PictureError

__all__ = ["DOT_PROGRAM", "GRAPHVIZ_HINT", "inline_svg", "render_svg"]

DOT_PROGRAM = "dot"
GRAPHVIZ_HINT = (
    "Graphviz's 'dot' program is not installed: install the Debian package graphviz "
    "(apt-get install -y --no-install-recommends graphviz; macOS: brew install graphviz), "
    "or ask for --format dot or --format mermaid, which need no program"
)
_ROOT = re.compile(r"<svg[\s>]")


def render_svg(dot_source: str, timeout: float = 20.0) -> str:
    """The SVG document ``dot -Tsvg`` makes of ``dot_source``.

    Raises :class:`GraphvizMissingError` when ``dot`` is not on the PATH, :class:`PictureError` when
    it fails (its message) or takes longer than ``timeout`` seconds (it is killed)."""
    program = shutil.which(DOT_PROGRAM)
    if program is None:
        raise GraphvizMissingError(GRAPHVIZ_HINT)
    try:
        done = subprocess.run(
            [program, "-Tsvg"],
            input=dot_source.encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PictureError(f"Graphviz's dot took longer than {timeout:g} s to draw the picture") from None
    except OSError as exc:
        raise PictureError(f"Graphviz's dot ({program}) cannot run: {exc}") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}"
        raise PictureError(f"Graphviz's dot failed: {message}")
    return done.stdout.decode()


def inline_svg(svg: str) -> str:
    """``svg`` from its ``<svg>`` root on (without the XML declaration, DOCTYPE and comments before it):
    an element to put inside an HTML page."""
    found = _ROOT.search(svg)
    return svg[found.start() :] if found else svg
