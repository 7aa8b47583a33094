"""New versions of the example journeys, made in the tests (tmp_path), for the impact preview."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
JOURNEYS = ROOT / "journeys"
EXAMPLES = JOURNEYS / "examples"
WELCOME = JOURNEYS / "welcome.yaml"
WELCOME_EVENTS = EXAMPLES / "welcome.events.jsonl"
WINBACK = JOURNEYS / "winback.yaml"
WINBACK_EVENTS = EXAMPLES / "winback.events.jsonl"


def write_version(
    tmp_path: Path,
    base: Path,
    change: Callable[[dict[str, Any]], None] | None = None,
    name: str = "v2.yaml",
    **top: Any,
) -> Path:
    """A copy of the journey file ``base`` with version 2 (or ``top``'s), changed by ``change(doc)``,
    written to ``tmp_path/name``."""
    doc = yaml.safe_load(base.read_text())
    doc["version"] = 2
    doc.update(top)
    if change is not None:
        change(doc)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def shorter_timeout(doc: dict[str, Any]) -> None:
    doc["steps"]["wait_open"]["timeout"]["after"] = "12h"


def no_sms(doc: dict[str, Any]) -> None:
    del doc["steps"]["welcome_sms"]
    doc["steps"]["sms_allowed"]["branches"][0]["next"] = "no_sms"


def renamed_wait(doc: dict[str, Any]) -> None:
    doc["steps"]["wait_for_open"] = doc["steps"].pop("wait_open")
    doc["steps"]["welcome_email"]["next"] = "wait_for_open"


def more_offer_20(doc: dict[str, Any]) -> None:
    branches = doc["steps"]["ab"]["branches"]
    branches[0]["percent"], branches[1]["percent"] = 20, 70
