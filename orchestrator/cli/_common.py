"""Options several commands share."""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.config import Settings, load_settings

__all__ = ["add_config_option", "settings_from"]


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, default=None, help="TOML config file (else ORCH_CONFIG; env ORCH_* overrides)"
    )
    parser.add_argument(
        "--bootstrap-servers", default=None, help="Kafka bootstrap servers (ORCH_BOOTSTRAP_SERVERS)"
    )


def settings_from(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, bootstrap_servers=args.bootstrap_servers)
