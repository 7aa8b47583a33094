"""Where the example journeys, their events and the demo's own events are: the checkout's
``journeys/`` folder (a development install), else the copy installed with the package
(``<prefix>/share/journey-orchestrator/journeys``: pyproject's data files), so that ``orchestrator
demo`` works from any folder."""

from __future__ import annotations

import site
import sys
import sysconfig
from pathlib import Path

from orchestrator.exceptions import OrchestratorError

__all__ = ["SHARED", "DemoError", "example_dir"]

SHARED = Path("share") / "journey-orchestrator" / "journeys"
"""Where the package installs the example files, under an installation prefix."""


class DemoError(OrchestratorError):
    """The demo cannot run: its files are missing, or what it started did not answer."""


def _complete(folder: Path) -> bool:
    return (
        (folder / "policy.yaml").is_file() and (folder / "examples").is_dir() and (folder / "demo").is_dir()
    )


def example_dir(prefixes: list[Path] | None = None, checkout: Path | None = None) -> Path:
    """The folder with the example journeys (``policy.yaml``, ``examples/``, ``demo/``): ``checkout``
    (default: the ``journeys/`` folder beside this package's source) or, under one of ``prefixes``
    (default: the installation's), the installed copy."""
    checkout = checkout or Path(__file__).resolve().parents[2] / "journeys"
    if _complete(checkout):
        return checkout
    bases = prefixes if prefixes is not None else [
        Path(sys.prefix), Path(sysconfig.get_path("data")), Path(site.USER_BASE or sys.prefix)
    ]  # fmt: skip
    for base in bases:
        if _complete(base / SHARED):
            return base / SHARED
    where = ", ".join(str(b / SHARED) for b in bases)
    raise DemoError(
        f"the example journeys are not installed (looked in {checkout} and {where}); reinstall the "
        "package, or pass --journeys DIR and --events FILE"
    )
