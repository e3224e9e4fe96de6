"""The ``selfpanoptic`` command line: one subcommand per workflow stage, plus ``audit`` and ``config``.

Each command is a module of :mod:`selfpanoptic.stages` (``HELP``, ``PARENTS``,
``add_arguments``, ``run``). A stage's config sections come inline as JSON
(``--<section>-settings``, what the workflow passes) or from a whole config file (``--config``,
for a person running a stage by hand). Inputs and outputs are always explicit paths.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from pathlib import Path

from . import __version__
from .errors import SelfPanopticError
from .launch import started_as_rank

COMMANDS = [
    "synthesize", "index", "mix", "cache", "panoptic-gt",
    "train-translator", "translate-source", "label-fidelity",
    "train-semantic-gan", "train-gan-encoder", "predict-semantic-gan", "sample-semantic-gan",
    "pretrain-semantic", "pretrain-instance", "predict-semantic", "predict-instance",
    "pseudo-semantic", "selftrain-semantic", "selftrain-instance", "pseudo-instance",
    "score-semantic", "score-instance", "export-semantic", "export-instance", "fuse-panoptic", "score-panoptic", "score-label-free",
    "select-round", "evaluate",
    "predict-panoptic", "report", "summarize", "ablation", "audit", "config",
]
"""Every command, in workflow order; ``selfpanoptic.stages.<name with _>`` implements it."""
OUTPUT_OPTIONS = ("out", "out_folder", "out_json", "out_manifest", "colour_out", "grid", "stats",
                  "stats_md", "table", "synthia_root", "gta_root", "target_root")
"""Argument names (``dest``) of outputs written whole (a file, or a folder a stage module lists in
its ``FOLDER_OUTPUTS``); ``report --out-dir`` is not one: it only adds its own files to the folder."""


def stage_module(command: str):
    """The stage module of ``command``."""
    return importlib.import_module(f".stages.{command.replace('-', '_')}", __package__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="selfpanoptic", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"selfpanoptic {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        module = stage_module(command)
        p = sub.add_parser(command, help=module.HELP, description=module.__doc__.strip().splitlines()[0].replace("``", ""),
                           parents=module.PARENTS)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
    return parser


def _paths_in(value) -> list[Path]:
    """The path-like strings of one option's value (a string, a list, or a list of lists); inline
    JSON settings are not paths."""
    items = value if isinstance(value, list) else [value]
    items = [v for item in items for v in (item if isinstance(item, list) else [item])]
    return [Path(v) for v in items if isinstance(v, str) and v and not v.startswith(("{", "["))]


def _user_paths(args: argparse.Namespace) -> list[Path]:
    """Every path-like value the user gave on the command line."""
    return [path for value in vars(args).values() for path in _paths_in(value)]


def _argument_name(command: str, dest: str) -> str:
    """How the user names an argument of ``command``: ``--out``, or a positional's metavar (``FILE``)."""
    parser = argparse.ArgumentParser(add_help=False)
    stage_module(command).add_arguments(parser)
    positional = {action.dest: action.metavar or action.dest.upper() for action in parser._actions
                  if not action.option_strings}
    return positional.get(dest, "--" + dest.replace("_", "-"))


def _check_not_empty(args: argparse.Namespace) -> None:
    """Refuse an argument given as an empty string: as a path it would silently be the current folder."""
    from .errors import InputError

    for name, value in vars(args).items():
        items = value if isinstance(value, list) else [value]
        if "" in [v for item in items for v in (item if isinstance(item, list) else [item])]:
            what = "has an empty entry" if isinstance(value, list) else "is empty"
            raise InputError(f"{_argument_name(args.command, name)} {what}", None,
                             "give it a value (an empty path would be read as the current folder)")


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse empty arguments, and outputs that would replace an input or a folder selfpanoptic did not
    write, before any work."""
    from .atomic import check_output_paths

    _check_not_empty(args)
    folders = getattr(stage_module(args.command), "FOLDER_OUTPUTS", ())
    outputs, inputs = {}, {}
    for name, value in vars(args).items():
        option = "--" + name.replace("_", "-")
        if name in OUTPUT_OPTIONS and isinstance(value, str) and value:
            outputs[option] = (Path(value), name in folders)
        elif name not in ("command", "func"):
            inputs[option] = _paths_in(value)
    check_output_paths(outputs, inputs)


def _is_user_path(filename, args: argparse.Namespace) -> bool:
    """Whether an OSError's file is one the user named, lies below one, or is a temporary file beside one."""
    if not filename:
        return False
    path = Path(filename).absolute()
    for given in _user_paths(args):
        given = given.absolute()
        temporary_sibling = path.parent == given.parent and ".tmp-" in path.name
        if path == given or given in path.parents or path in given.parents or temporary_sibling:
            return True
    return False


def _describe_os_error(err: OSError) -> str:
    """``path: problem`` and a fix line for an OSError on a user's path."""
    path = Path(err.filename)
    blocking = next((p for p in [path, *path.parents] if p.is_file()), None)
    if blocking is not None and blocking != path:
        return f"{path}: {blocking} is a file, so nothing can be written below it\n  fix: choose another output path"
    return f"{path}: {err.strerror or err}\n  fix: check the path and its permissions"


def _device_claim(args: argparse.Namespace):
    """Commands that may use CUDA hold their GPUs while they run: one, or one per process."""
    if getattr(args, "device", "cpu") == "cpu" or started_as_rank():
        return contextlib.nullcontext()  # a rank's launcher or scheduler chose its GPU
    from .gpus import claim_gpus

    return claim_gpus(max(1, getattr(args, "processes", 1)))


def _print_error(args: argparse.Namespace, message: str) -> None:
    """Print a user error; a rank of ``--processes`` leaves it to the launcher, which prints it once."""
    from .launch import report_rank_error

    text = f"selfpanoptic {args.command}: error: {message}\n"
    if not report_rank_error(text):
        print(text, file=sys.stderr, end="")


def _leave_process_group(clean: bool) -> None:
    """A rank of a data-parallel job leaves its process group: after the other ranks when it
    finished (``clean``), at once when it failed. Nothing to do for other commands."""
    distributed = sys.modules.get(f"{__package__}.distributed")  # imported only by training commands
    if distributed is not None and clean:
        distributed.stop()
    elif distributed is not None:
        distributed.abandon()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        _check_outputs(args)
        with _device_claim(args):
            if getattr(args, "processes", 1) > 1 and not started_as_rank():
                from .launch import launch

                return launch(argv, args.processes, args.command)
            args.func(args)
            _leave_process_group(clean=True)
    except SelfPanopticError as err:
        _print_error(args, str(err))
        _leave_process_group(clean=False)
        return 2
    except OSError as err:
        # a path the user gave cannot be read or written: their input, not a bug (else: traceback)
        if not _is_user_path(err.filename, args) and not _is_user_path(err.filename2, args):
            raise
        _print_error(args, _describe_os_error(err))
        _leave_process_group(clean=False)
        return 2
    except KeyboardInterrupt:
        print(f"selfpanoptic {args.command}: interrupted; no output was completed", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
