"""Start-up cost of a workflow job: the ``selfpanoptic`` command line before it does any work.

    python benchmarks/bench_startup.py                  # best of 3, every command
    python benchmarks/bench_startup.py --repeats 5 --commands cache pretrain-semantic

Every job of the workflow is a fresh ``selfpanoptic COMMAND ...`` process, so what it imports
before its first useful line is paid once per job. Measured, each in a fresh interpreter, best
of ``--repeats`` wall times (the minimum is the least disturbed by other processes):

* ``python -c "import torch"``: the floor of every command that runs a model;
* ``selfpanoptic --help``: the command table and every stage module's options;
* per command, ``selfpanoptic COMMAND --help`` (parsing alone), and ``imports``: the parser plus
  every module the command's stage module imports, inside its functions too (read with
  :mod:`ast`), i.e. what the job imports before reading its first input;
* ``torch._dynamo``: whether those imports pull it in (about 1 s on a 2-core CPU; a training
  job pays it anyway at its first optimiser call, a job that only reads files should not).

CUDA initialisation is not included (no GPU is touched). The printed table is Markdown.
"""

from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
import time
from pathlib import Path

from selfpanoptic.cli import COMMANDS, stage_module

IMPORTS = """
import importlib, sys
from selfpanoptic.cli import build_parser
build_parser()
for name in {names!r}:
    importlib.import_module(name)
print("torch._dynamo" in sys.modules, "torch" in sys.modules)
"""


def stage_imports(command: str) -> list[str]:
    """Absolute names of the modules the stage module of ``command`` imports, anywhere in it."""
    module = stage_module(command)
    package = module.__name__.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(Path(module.__file__).read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
            names.append(".".join(anchor + ([node.module] if node.module else [])))
    return [name for name in dict.fromkeys(names) if name != "__future__"]


def best_of(argv: list[str], repeats: int) -> tuple[float, str]:
    """Minimum wall time (s) of running ``argv`` ``repeats`` times, and its last stdout."""
    times, out = [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env=os.environ)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(f"{' '.join(argv)} failed:\n{done.stderr}")
        out = done.stdout
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the best counts (default 3)")
    parser.add_argument("--commands", nargs="+", default=COMMANDS, choices=COMMANDS, metavar="COMMAND",
                        help="commands to measure (default: all)")
    args = parser.parse_args()
    python, cli = sys.executable, [sys.executable, "-m", "selfpanoptic.cli"]

    torch_s, _ = best_of([python, "-c", "import torch"], args.repeats)
    help_s, _ = best_of([*cli, "--help"], args.repeats)
    print(f"machine: {os.cpu_count()} CPUs; best of {args.repeats}; seconds of wall time\n")
    print(f"| `python -c \"import torch\"` | {torch_s:.2f} |\n|---|---:|\n| `selfpanoptic --help` | {help_s:.2f} |\n")
    print("| command | `COMMAND --help` | imports | torch | torch._dynamo |")
    print("|---|---:|---:|---|---|")
    for command in args.commands:
        command_help, _ = best_of([*cli, command, "--help"], args.repeats)
        imports, out = best_of([python, "-c", IMPORTS.format(names=stage_imports(command))], args.repeats)
        dynamo, torch = out.split()
        print(f"| {command} | {command_help:.2f} | {imports:.2f} | {'yes' if torch == 'True' else 'no'} "
              f"| {'yes' if dynamo == 'True' else 'no'} |", flush=True)


if __name__ == "__main__":
    main()
