"""docs/simulate.md, "Before you deploy: the impact preview": the example's output is what
``orchestrator diff`` prints on the repository's files, and the JSON keys it lists are the report's."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import orjson
import pytest

from orchestrator.cli import main

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "simulate.md").read_text()
SECTION = DOC.split("## Before you deploy: the impact preview", 1)[1].split("\n## ", 1)[0]
SED = (
    "$ sed -e 's/^version: 1/version: 2/' -e 's/after: 24h/after: 12h/' journeys/welcome.yaml "
    "> welcome-v2.yaml"
)


def _example() -> tuple[list[str], str]:
    """The command's arguments (after ``orchestrator``) and the output the doc shows."""
    (block,) = re.findall(r"```console\n(.*?)```", SECTION, re.S)
    lines = block.splitlines()
    assert lines[0] == SED
    command, n = lines[1], 2
    while command.endswith("\\"):
        command, n = command[:-1] + lines[n].strip(), n + 1
    argv = shlex.split(command.removeprefix("$ "))
    assert argv[:2] == ["orchestrator", "diff"]
    return argv[1:], "\n".join(lines[n:]) + "\n"


def _new_version(tmp_path: Path) -> Path:
    """What the doc's sed line makes."""
    text = (ROOT / "journeys" / "welcome.yaml").read_text()
    new = text.replace("\nversion: 1\n", "\nversion: 2\n").replace("after: 24h", "after: 12h")
    assert new.count("version: 2") == 1
    assert "after: 12h" in new
    path = tmp_path / "welcome-v2.yaml"
    path.write_text(new)
    return path


def test_the_example_prints_what_the_doc_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv, shown = _example()
    new = _new_version(tmp_path)
    monkeypatch.chdir(ROOT)
    code = main([str(new) if a == "welcome-v2.yaml" else a for a in argv])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert out.replace(f"{tmp_path}/", "") == shown


def test_the_json_keys_listed_are_the_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv, _ = _example()
    new = _new_version(tmp_path)
    monkeypatch.chdir(ROOT)
    assert main([str(new) if a == "welcome-v2.yaml" else a for a in argv] + ["--json"]) == 0
    data = orjson.loads(capsys.readouterr().out)
    listed: set[str] = set()
    for row in re.findall(r"^\| `([^|]+)` \|", SECTION, re.M):
        listed |= set(re.findall(r"[a-z_]+", row))
    assert listed == set(data)
    runs = re.search(r"\| `runs` \| (.*) \|", SECTION)
    assert runs is not None
    assert set(re.findall(r"`([a-z_]+)`", runs.group(1))) == {"old", "new", *data["runs"]["old"]}
