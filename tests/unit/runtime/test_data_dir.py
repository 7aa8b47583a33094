"""The worker's data directory (issue 18, trap 1: ``orchestrator worker`` in a fresh checkout failed with
``FileNotFoundError: 'var/worker'``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.exceptions import ConfigError
from orchestrator.runtime.app import prepare_data_dir


def test_the_data_dir_is_created_with_its_parents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a fresh folder, as a fresh checkout: no var/ in it
    prepare_data_dir(Path("var/worker"))
    assert (tmp_path / "var" / "worker").is_dir()
    prepare_data_dir(Path("var/worker"))  # (there already: fine)


def test_a_data_dir_that_cannot_be_made_is_a_clear_error_naming_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"data_dir '.*a-file/worker' cannot be used: .*ORCH_DATA_DIR"):
        prepare_data_dir(blocker / "worker")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_data_dir_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match="cannot be used"):
        prepare_data_dir(locked)
