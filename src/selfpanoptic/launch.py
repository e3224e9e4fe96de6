"""``--processes N``: run one training command as N ranks on this machine.

The ranks are started as torchrun starts them (one ``python -m selfpanoptic`` each, with ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` set, a free port on
this machine), so a command also runs under ``torchrun --nproc-per-node N -m selfpanoptic ...``
or on several machines that way. Starting them here keeps the command's own interface: one
error message (the first rank that failed says it; the others stop), its exit status, and no
launcher traceback for a user's mistake. A bug in a rank still shows that rank's traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ERROR_FOLDER_VARIABLE = "SELFPANOPTIC_RANK_ERRORS"
"""Where each rank writes the message of a user error, for the launcher to print once."""


def started_as_rank() -> bool:
    """Whether a launcher (``--processes``, torchrun, srun) started this process as one of several ranks."""
    return int(os.environ.get("WORLD_SIZE") or 1) > 1


def free_port() -> int:
    """A TCP port that is free on this machine now (for the ranks' rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rank_environment(index: int, processes: int, port: int, errors: str) -> dict[str, str]:
    """The variables a rank is started with: those torchrun sets, and where to leave a user error."""
    return {"RANK": str(index), "LOCAL_RANK": str(index), "WORLD_SIZE": str(processes),
            "LOCAL_WORLD_SIZE": str(processes), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
            ERROR_FOLDER_VARIABLE: errors}


def report_rank_error(message: str) -> bool:
    """In a rank started by :func:`launch`: keep ``message`` for the launcher to print; returns
    False elsewhere (the caller prints it itself)."""
    folder = os.environ.get(ERROR_FOLDER_VARIABLE)
    if not folder:
        return False
    Path(folder, f"rank{os.environ.get('RANK', '0')}.txt").write_text(message)
    return True


def launch(argv: list[str], processes: int, command: str) -> int:
    """Run ``selfpanoptic argv`` as ``processes`` ranks; return the exit status (0 when all succeed).

    Each rank is ``python -m selfpanoptic argv`` with :func:`rank_environment`. When one fails
    the others are stopped; a user error is printed once (the ranks leave it in a folder), a
    bug's traceback is on the failed rank's stderr.
    """
    print(f"{command}: starting {processes} processes (data-parallel; batch sizes are global)", flush=True)
    with tempfile.TemporaryDirectory(prefix="selfpanoptic-ranks-") as errors:
        port = free_port()
        ranks = [subprocess.Popen([sys.executable, "-m", "selfpanoptic", *argv],
                                  env={**os.environ, **rank_environment(i, processes, port, errors)})
                 for i in range(processes)]
        try:
            failed = _wait(ranks)
        finally:
            _stop(ranks)
        if failed is None:
            return 0
        # the rank that made the mistake says so; the others failed because it left
        messages = {path.stem: path.read_text() for path in Path(errors).glob("rank*.txt")}
        if messages:
            print(messages.get(f"rank{failed}") or messages[min(messages)], file=sys.stderr, end="")
            return 2
        code = ranks[failed].returncode
        print(f"selfpanoptic {command}: error: rank {failed} stopped with exit status {code} (the ranks' output is above)",
              file=sys.stderr)
        return code if code > 0 else 1


def _wait(ranks: list[subprocess.Popen]) -> int | None:
    """Wait until every rank has finished (None) or one has failed (its index)."""
    while True:
        codes = [rank.poll() for rank in ranks]
        failed = [index for index, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            return failed[0]
        if all(code == 0 for code in codes):
            return None
        time.sleep(0.1)


def _stop(ranks: list[subprocess.Popen], grace_seconds: float = 10.0) -> None:
    """Stop the ranks still running: SIGTERM, then SIGKILL after ``grace_seconds``."""
    for rank in ranks:
        if rank.poll() is None:
            rank.terminate()
    deadline = time.monotonic() + grace_seconds
    for rank in ranks:
        try:
            rank.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            rank.kill()
            rank.wait()
