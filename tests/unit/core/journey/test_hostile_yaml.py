"""Hostile journey and policy files are refused fast, in bounded memory, with file:line: field — never
a traceback: alias bombs, deep nesting, python tags, huge numbers, non-UTF-8 bytes, huge files. Each is
also run through the real `orchestrator validate` and `orchestrator deploy --dry-run` processes, timed,
with their peak memory measured."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.journey import load_journey_file, load_journey_text
from orchestrator.core.journey.yamlsrc import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_NODES,
    MAX_SOURCE_BYTES,
    compose_text,
)
from orchestrator.core.policy import load_policy_text
from orchestrator.exceptions import JourneyValidationError, PolicyValidationError

ROOT = Path(__file__).resolve().parents[4]
GOOD = (ROOT / "journeys" / "welcome.yaml").read_text()


def _alias_bomb() -> bytes:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(
            f"{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]"
        )
    return ("\n".join(lines) + "\n").encode()


HOSTILE: dict[str, tuple[bytes, str]] = {
    "alias_bomb": (_alias_bomb(), "values once aliases are expanded"),
    "deep_flow": (b"id: x\nsteps: " + b"[" * 500 + b"]" * 500 + b"\n", f"nested deeper than {MAX_DEPTH}"),
    "deeper_flow": (b"id: x\nsteps: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nest"),
    "deep_block": (
        b"".join(b" " * i + b"k:\n" for i in range(400)) + b" " * 400 + b"v\n",
        f"nested deeper than {MAX_DEPTH}",
    ),
    "python_tag": (
        b"id: !!python/name:os.system x\nversion: 1\n",
        "tag '!!python/name:os.system' is not allowed",
    ),
    "python_object": (
        b"id: x\nversion: !!python/object/apply:os.system ['true']\n",
        "is not allowed",
    ),
    "custom_tag": (b"id: !secret x\nversion: 1\n", "tag '!secret' is not allowed"),
    "huge_version": (b"id: welcome\nversion: " + b"9" * 5000 + b"\n", "version: cannot read the value"),
    "big_version": (b"id: welcome\nversion: " + b"9" * 40 + b"\n", "version: number out of range"),
    "inf": (b"id: welcome\nversion: .inf\n", "numbers must be finite"),
    "not_utf8": (b"id: welcome\nversion: 1\nname: caf\xe9\n", "3: (file): not UTF-8: byte 0xe9"),
    "ten_mb": (
        b"id: welcome\nversion: 1\ndescription: '" + b"x" * (10 * 1024 * 1024) + b"'\n",
        "over the limit",
    ),
    "many_aliases": (
        b"a: &a 1\nb: [" + b",".join([b"*a"] * (MAX_ALIASES + 5)) + b"]\n",
        f"more than {MAX_ALIASES} aliases",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_files_are_refused_with_file_and_line(name: str, tmp_path: Path) -> None:
    data, expected = HOSTILE[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(data)
    started = time.perf_counter()
    with pytest.raises(JourneyValidationError) as info:
        load_journey_file(path)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"{name}: {elapsed:.2f}s"
    assert any(expected in p for p in info.value.problems), info.value.problems
    for problem in info.value.problems:
        assert problem.startswith(f"{path}:"), problem


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_text_never_raises_anything_else(name: str) -> None:
    data, _ = HOSTILE[name]
    text = data.decode("utf-8", errors="replace")
    with pytest.raises(JourneyValidationError):
        load_journey_text(text, f"{name}.yaml")
    with pytest.raises(PolicyValidationError):
        load_policy_text("kind: policy\n" + text, f"{name}.yaml")


def _run_measured(*args: str) -> tuple[int, str, float, int]:
    """(exit code, stderr, seconds, peak RSS in MB) of `orchestrator ARGS` in a child process."""
    code = (
        "import sys\n"
        "from orchestrator.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        # VmHWM, not ru_maxrss: the latter keeps the high-water mark of the process before exec (the
        # forking pytest, hundreds of MB late in a full run)
        "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
        "print('PEAK_RSS_KB', hwm.split()[1], file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    elapsed = time.perf_counter() - started
    peak = next(int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB"))
    return proc.returncode, proc.stderr, elapsed, peak // 1024


@pytest.mark.parametrize("command", ["validate", "deploy"])
def test_cli_refuses_every_hostile_file_fast_and_small(command: str, tmp_path: Path) -> None:
    # one process per command for all files: start-up is paid once; each file is timed by the
    # process's total (the imports are included, so the bound is generous to the machine, not to us)
    paths = []
    for name, (data, _) in sorted(HOSTILE.items()):
        path = tmp_path / f"{name}.yaml"
        path.write_bytes(data)
        paths.append(str(path))
    extra = ["--dry-run"] if command == "deploy" else []
    rc, err, elapsed, peak_mb = _run_measured(command, *extra, *paths)
    assert rc == 1, err
    assert "Traceback" not in err
    for name, (_, expected) in HOSTILE.items():
        assert any(
            line.startswith(f"{tmp_path}/{name}.yaml:") and expected in line for line in err.splitlines()
        ), (
            name,
            err,
        )
    assert elapsed < 2.0 * len(HOSTILE), f"{elapsed:.1f}s for {len(HOSTILE)} files"
    assert peak_mb < 200, f"peak RSS {peak_mb} MB"


def test_each_limit_is_a_bound_not_a_wall_for_good_files() -> None:
    # a real journey is far below every limit, and a file just under them still loads
    assert load_journey_text(GOOD, "welcome.yaml").id == "welcome"
    padded = GOOD + "description: '" + "x" * (MAX_SOURCE_BYTES - len(GOOD.encode()) - 40) + "'\n"
    assert len(padded.encode()) <= MAX_SOURCE_BYTES
    assert "description" in compose_text(padded, "p.yaml").value
    nested = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert not compose_text(nested, "n.yaml").problems
    anchors = "a: &a [1, 2]\nb: [" + ", ".join(["*a"] * 20) + "]\n"
    doc = compose_text(anchors, "anchors.yaml")
    assert not doc.problems
    assert doc.value["b"][19] == [1, 2]
    assert MAX_NODES >= 10_000


@given(st.binary(max_size=2000))
def test_any_bytes_give_problems_or_a_value_never_an_exception(data: bytes) -> None:
    doc = compose_text(data.decode("utf-8", errors="replace"), "fuzz.yaml")
    assert doc.problems or doc.value is not None or doc.lines  # read (possibly as null) or refused
    for problem in doc.problems:
        assert problem.startswith("fuzz.yaml:")


def _has_big_int(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not -(2**63) <= value < 2**63
    if isinstance(value, list):
        return any(_has_big_int(v) for v in value)
    if isinstance(value, dict):
        return any(_has_big_int(v) for v in value.values())
    return False


_YAML_TEXT = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Co", "Cn", "Cf", "Zl", "Zp")), max_size=20
)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | _YAML_TEXT,
        lambda c: st.lists(c) | st.dictionaries(_YAML_TEXT, c),
        max_leaves=30,
    )
)
def test_any_json_value_written_as_yaml_reads_back(value: object) -> None:
    import json

    text = json.dumps({"v": value}, ensure_ascii=False)  # JSON is YAML
    doc = compose_text(text, "v.yaml")
    if any("64 bits" in p for p in doc.problems):
        assert _has_big_int(value)
        return
    assert not doc.problems, doc.problems
    assert doc.value == {"v": value}
