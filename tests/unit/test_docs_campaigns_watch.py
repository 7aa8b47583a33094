"""docs/campaigns.md, "Watching a campaign": its console block is what `orchestrator campaigns
--from-simulate` prints on the repository's example, and every column of the table is explained."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.runtime.releases import REPORT_COUNTS

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "campaigns.md").read_text()
SECTION = DOC.split("## Watching a campaign: `orchestrator campaigns`", 1)[1].split("\n## ", 1)[0]


def test_the_console_block_is_what_the_command_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (shown,) = re.findall(r"```console\n(.*?)```", SECTION, re.S)
    simulate, campaigns = re.findall(r"^\$ (.*?)(?=^\$ |\Z)", shown, re.S | re.M)
    first, *rest = simulate.replace("\\\n", " ").splitlines()
    assert rest == ["..."]  # (simulate's own output, not shown)
    argv = first.split()
    assert argv[0] == "orchestrator"
    monkeypatch.chdir(tmp_path)  # (state.json is written here; the paths are the repository's)
    argv = [str(ROOT / a) if a.startswith("journeys") else a for a in argv[1:]]
    assert main(argv) == 0
    command, *printed = campaigns.rstrip("\n").splitlines()
    assert command == "orchestrator campaigns --from-simulate state.json"
    capsys.readouterr()
    assert main(command.split()[1:]) == 0
    assert capsys.readouterr().out.splitlines() == printed


def test_every_column_is_explained() -> None:
    explained = set(re.findall(r"`([a-z]+)`", " ".join(re.findall(r"^\| (.*?) \|", SECTION, re.M))))
    assert {"campaign", "version", "status", "segment", *REPORT_COUNTS} <= explained
