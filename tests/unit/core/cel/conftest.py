"""The conformance pass rate per file, at the end of the run (when test_cel_spec.py ran)."""

from __future__ import annotations

from typing import Any


def pytest_terminal_summary(terminalreporter: Any) -> None:
    import sys

    module = sys.modules.get("test_cel_spec")
    results: dict[str, list[int]] = getattr(module, "RESULTS", {}) if module else {}
    if not results:
        return
    write = terminalreporter.write_line
    write("CEL conformance (cel-spec core files): passed / applicable, not applicable")
    total_pass = total_app = 0
    for name, (passed, failed, skipped) in sorted(results.items()):
        applicable = passed + failed
        rate = f"{100 * passed / applicable:5.1f} %" if applicable else "    -  "
        write(f"  {name:16} {passed:4} / {applicable:4}  {rate}   ({skipped} not applicable)")
        total_pass, total_app = total_pass + passed, total_app + applicable
    if total_app:
        write(f"  {'all':16} {total_pass:4} / {total_app:4}  {100 * total_pass / total_app:5.1f} %")
