"""``selfpanoptic synthesize``: generate the toy domains in the Synthia, GTA5 and Cityscapes formats."""

from __future__ import annotations

import argparse

from .common import QUIET, THREADS, progress, settings, settings_parent

HELP = "generate the toy domains in the Synthia, GTA5 and Cityscapes formats"
PARENTS = [settings_parent("toy"), THREADS, QUIET]
FOLDER_OUTPUTS = ("synthia_root", "gta_root", "target_root")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--synthia-root", help="output folder of the synthia-like domain (default: the config's)")
    parser.add_argument("--gta-root", help="output folder of the gta-like domain (default: the config's)")
    parser.add_argument("--target-root", help="output folder of the cityscapes-like target domain (default: the config's)")


def run(args: argparse.Namespace) -> None:
    from ..config import load_config, validate_config
    from ..toy.domains import synthesize_toy_domains

    datasets = (load_config(args.config) if args.config else validate_config({}))["datasets"]
    roots = {
        "synthia": args.synthia_root or datasets["synthia"]["root"],
        "gta": args.gta_root or datasets["gta"]["root"],
        "target": args.target_root or datasets["target"]["root"],
    }
    synthesize_toy_domains(settings(args, "toy"), roots, workers=args.threads, progress=progress(args))
