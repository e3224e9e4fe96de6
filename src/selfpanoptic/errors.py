"""Errors a user can act on.

Every problem with the user's input (config, dataset files) is raised as :class:`InputError`,
whose message names the offending file or key and says how to fix it. The command line prints
such errors as one message without a traceback.
"""

from __future__ import annotations

from pathlib import Path


class SelfPanopticError(Exception):
    """Base class of the errors the command line reports without a traceback."""


class InputError(SelfPanopticError):
    """Bad user input: a missing or unreadable file, a malformed label, a config mistake.

    Parameters
    ----------
    problem:
        What is wrong, in one sentence.
    path:
        The file or directory concerned, if any; it leads the message.
    fix:
        What the user should do about it.
    """

    def __init__(self, problem: str, path: str | Path | None = None, fix: str | None = None):
        self.problem = problem
        self.path = None if path is None else Path(path)
        self.fix = fix
        message = problem if path is None else f"{path}: {problem}"
        if fix:
            message += f"\n  fix: {fix}"
        super().__init__(message)


class BadFilesError(InputError):
    """Several dataset files are unusable; lists each with its own problem."""

    def __init__(self, dataset: str, problems: list[InputError], fix: str | None = None, shown: int = 20):
        lines = [f"{len(problems)} file(s) of dataset {dataset!r} cannot be used:"]
        for err in problems[:shown]:
            lines.append(f"  {err.path}: {err.problem}")
        if len(problems) > shown:
            lines.append(f"  ... and {len(problems) - shown} more")
        fixes = sorted({err.fix for err in problems if err.fix})
        if fix:
            fixes.insert(0, fix)
        self.problems = problems
        super().__init__("\n".join(lines), None, "; ".join(fixes) or None)
