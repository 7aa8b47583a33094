"""`orchestrator demo` from a folder outside the checkout, on the session's broker: it tells what
happened and why, keeps the worker's log, says what to try next (issue 18, trap 8).

The golden output (tests/golden/demo.txt) is the demo's text with the parts of this run replaced by
names (<broker>, <url>, <workdir>, <journeys>). Write it again after a deliberate change with
``ORCH_UPDATE_GOLDEN=1 pytest tests/integration/test_demo.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "demo.txt"


def _normalised(text: str, bootstrap: str, workdir: Path) -> str:
    text = text.replace(bootstrap, "<broker>").replace(str(workdir), "<workdir>")
    text = text.replace(str(ROOT / "journeys"), "<journeys>")
    text = re.sub(r"\[\d+\]@\d+", "[<partition>]@<offset>", text)  # (the bad lines go unkeyed)
    return re.sub(r"http://127\.0\.0\.1:\d+", "<url>", text)


def test_the_demo_tells_the_story_from_any_folder(kafka_bootstrap: str, tmp_path: Path) -> None:
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    workdir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "demo", "--bootstrap-servers", kafka_bootstrap,
         "--workdir", str(workdir)],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    # no noise, no raw data
    for noise in ("Deprecat", "GETPID", "Traceback"):
        assert noise not in out, noise
    assert not re.search(r"\{'[^']*': ", out), "a Python dict in the output"
    assert not re.search(r"\b1[6-9]\d{11}\b", out), "epoch milliseconds in the output"
    # the stories: every step with its ISO time, the reasons said
    story = out.split("== 7.")[1].split("== 8.")[0]
    steps = [line for line in story.splitlines() if line.startswith("     ")]
    assert len(steps) >= 15
    assert all(re.match(r"^     \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  welcome · ", line) for line in steps), steps
    assert "no email.opened within 24 h" in story
    assert "email.opened came in time" in story
    assert "email suppressed — no_consent: no consent for the category on the channel" in story
    assert "the worker's actions are the engine's, id for id: yes" in story
    # the log kept and named, what to try next
    assert (workdir / "worker.log").stat().st_size > 0
    assert f"the worker's log is kept: {workdir / 'worker.log'}" in out
    assert "== what to try next" in out
    # the example journeys drawn with the worker's counts, and said where
    said = "== 9. the example journeys as pictures, with the worker's counts (`orchestrator graph`): "
    assert f"{said}{workdir / 'pictures'}" in out
    for name in ("welcome", "abandoned_cart", "winback", "post_purchase", "cart_nudge"):
        picture = (workdir / "pictures" / f"{name}.svg").read_text()
        assert picture.lstrip().startswith("<?xml"), name
        assert " entered</text>" in picture, name
    text = _normalised(done.stdout, kafka_bootstrap, workdir)
    if os.environ.get("ORCH_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()
