"""docs/templates.md: its template files load and validate, its tables say what the loader and the
sandbox do (fields, limits, filters), and its console blocks are what the commands print."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.cli.validate import validate_paths
from orchestrator.core.template import PART_LIMITS, load_template_text
from orchestrator.core.template.loader import _TOP
from orchestrator.core.template.sandbox import FILTERS

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "templates.md").read_text()


def _section(title: str) -> str:
    return DOC.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def _blocks(kind: str, text: str = DOC) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", text, re.S)


def test_the_template_files_shown_load_and_validate(tmp_path: Path) -> None:
    blocks = _blocks("yaml", _section("The template file"))
    assert len(blocks) == 3
    for text in blocks:
        template = load_template_text(text, "doc.yaml")
        (tmp_path / f"{template.id}.yaml").write_text(text)
    summaries, problems = validate_paths([tmp_path])
    assert problems == []
    assert len(summaries) == 3


def test_every_field_the_loader_accepts_is_described() -> None:
    described = set(re.findall(r"^\| `([a-z_]+)`(?:, `([a-z_]+)`)? \|", _section("The template file"), re.M))
    names = {n for pair in described for n in pair if n}
    assert set(_TOP) <= names, set(_TOP) - names


def test_the_limits_table_is_the_loaders() -> None:
    rows = re.findall(r"^\| (email|sms|push) \| [^|`]*`(\w+)`[^|]*\| ([\d,]+) \| ([\d,]+) \|$", DOC, re.M)
    shown = {(ch, part): (int(t.replace(",", "")), int(r.replace(",", ""))) for ch, part, t, r in rows}
    assert shown == PART_LIMITS


def test_the_filters_listed_are_the_sandboxs() -> None:
    paragraph = _section("Writing the text").split("Filters: ", 1)[1].split("\n\n", 1)[0]
    assert re.findall(r"`(\w+)`", paragraph) == list(FILTERS)


@pytest.mark.parametrize("block", _blocks("console"))
def test_each_console_block_is_what_the_command_prints(
    block: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    command, *expected = block.rstrip("\n").split("\n")
    args = shlex.split(command.removeprefix("$ "))
    assert args[0] == "orchestrator"
    monkeypatch.chdir(ROOT)
    code = main(args[1:])
    out, err = capsys.readouterr()
    assert (out + err).rstrip("\n").split("\n") == expected
    assert code == (1 if err else 0)
