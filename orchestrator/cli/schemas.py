"""``orchestrator schemas [--check]``: write or check the JSON Schema files in schemas/."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from orchestrator.contracts.schemas import stale_schemas, write_schemas

__all__ = ["register"]


def register(sub: Any) -> None:
    parser = sub.add_parser("schemas", help="write (or --check) the contracts' JSON Schema files")
    parser.add_argument("--dir", type=Path, default=Path("schemas"), help="target folder (default schemas/)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a file differs from the models")
    parser.set_defaults(func=_schemas)


def _schemas(args: argparse.Namespace) -> int:
    if args.check:
        stale = stale_schemas(args.dir)
        for name in stale:
            print(f"{args.dir / name}: out of date (run: orchestrator schemas)", file=sys.stderr)
        return 1 if stale else 0
    for path in write_schemas(args.dir):
        print(f"wrote {path}")
    return 0
