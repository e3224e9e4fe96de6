"""``selfpanoptic config``: validate a config file and print it with every default filled in."""

from __future__ import annotations

import argparse

HELP = "validate a config file and print it with every default filled in"
PARENTS: list = []


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", help="config file (YAML); none prints the defaults")
    parser.add_argument("--json", action="store_true", help="print JSON instead of YAML")


def run(args: argparse.Namespace) -> None:
    import json

    import yaml

    from ..config import load_config, validate_config

    config = load_config(args.file) if args.file else validate_config({})
    if args.json:
        print(json.dumps(config, indent=2, sort_keys=True))
    else:
        print(yaml.safe_dump(config, sort_keys=False), end="")
