"""The Faust (and aiokafka) the runtime was checked against is the one installed, and every private
attribute it relies on is still there. A failure here means: re-check each entry of
orchestrator/runtime/faust_compat.py against the new release, then update CHECKED."""

from __future__ import annotations

import importlib
import inspect

import pytest

from orchestrator.runtime.faust_compat import (
    CHECKED,
    PRIVATE_ATTRIBUTES,
    installed_versions,
    warn_if_unchecked,
)


def test_the_installed_versions_are_the_checked_ones() -> None:
    assert installed_versions() == CHECKED, (
        "faust-streaming or aiokafka changed: re-check every workaround and private attribute listed in "
        "orchestrator/runtime/faust_compat.py, then update CHECKED"
    )
    assert warn_if_unchecked() == []


@pytest.mark.parametrize(("module", "cls", "attribute", "why"), PRIVATE_ATTRIBUTES)
def test_every_private_attribute_still_exists(module: str, cls: str, attribute: str, why: str) -> None:
    owner = getattr(importlib.import_module(module), cls)
    source = inspect.getsource(owner)
    assert hasattr(owner, attribute) or f"self.{attribute}" in source, f"{module}.{cls}.{attribute} ({why})"
