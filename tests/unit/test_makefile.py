"""`make debs` (issue 18, trap 9): system packages installed only when missing, the command printed
first, with --no-install-recommends, and a documented way to skip it. apt-get is replaced by a script
that writes down how it was called (the Makefile itself runs for real)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _make(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    shims = tmp_path / "bin"
    shims.mkdir(exist_ok=True)
    calls = tmp_path / "calls.txt"
    for name in ("apt-get", "sudo"):
        shim = shims / name
        body = 'exec "$@"' if name == "sudo" else f'echo "apt-get $*" >> {calls}'
        shim.write_text(f"#!/bin/sh\n{body}\n")
        shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "debs", *args], env=env, capture_output=True, text=True, timeout=60
    )
    return done, calls.read_text().splitlines() if calls.exists() else []


def test_nothing_is_installed_when_every_tool_is_there(tmp_path: Path) -> None:
    done, calls = _make(tmp_path, "DEB_TOOLS=sh:dash")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert calls == []


def test_a_missing_tool_is_said_first_then_installed_without_recommends(tmp_path: Path) -> None:
    done, calls = _make(tmp_path, "DEB_TOOLS=sh:dash no-such-tool-x:pkg-x no-such-tool-y:pkg-x")
    assert done.returncode == 0, done.stderr
    first, skip = done.stdout.splitlines()[:2]
    assert first.startswith("installing the Debian packages pkg-x: ")
    assert first.endswith("apt-get install -y --no-install-recommends pkg-x")
    assert skip == "(skip with: make test SKIP_DEBS=1)"
    assert calls == ["apt-get update -qq", "apt-get install -y -qq --no-install-recommends pkg-x"]


def test_skip_debs_installs_nothing_and_says_what_is_missing(tmp_path: Path) -> None:
    done, calls = _make(tmp_path, "DEB_TOOLS=no-such-tool-x:pkg-x", "SKIP_DEBS=1")
    assert done.returncode == 0, done.stderr
    assert "SKIP_DEBS is set: not installing the Debian packages pkg-x" in done.stdout
    assert calls == []
