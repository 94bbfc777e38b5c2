"""The `xds-hub` command line: one module per group of verbs, each adding its sub-commands."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xds_hub import __version__
from xds_hub.config import Settings, load_settings
from xds_hub.errors import ConfigError

#: Modules with a ``register(subparsers)`` function, in help order.
COMMAND_MODULES = (
    "xds_hub.cli.serve",
    "xds_hub.cli.admin",
    "xds_hub.cli.db",
    "xds_hub.cli.conformance",
    "xds_hub.cli.validate",
    "xds_hub.cli.client",
    "xds_hub.cli.pix",
    "xds_hub.cli.security",
    "xds_hub.cli.imaging",
)


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """--config, --data, --db, --blobs: the options every verb acting on a hub's store takes."""
    parser.add_argument(
        "--config", type=Path, help="affinity-domain TOML file (default: built-in demo domain)"
    )
    parser.add_argument("--data", type=Path, help="data folder (default ./xds-data)")
    parser.add_argument("--db", help="SQLAlchemy database URL (default SQLite under --data)")
    parser.add_argument("--blobs", help="blob store URL: file:///path or s3://bucket?endpoint=URL")


def settings_from(args: argparse.Namespace, **extra: Any) -> Settings:
    """Settings from the common options (and any extra overrides) of a parsed command line."""
    return load_settings(
        getattr(args, "config", None),
        data=getattr(args, "data", None),
        db=getattr(args, "db", None),
        blobs=getattr(args, "blobs", None),
        **extra,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xds-hub",
        description="A regional IHE hub: XDS.b registry/repository, XDS-I.b imaging source, PIX manager.",
    )
    parser.add_argument("--version", action="version", version=f"xds-hub {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"xds-hub: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``xds-hub audit | head``): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
