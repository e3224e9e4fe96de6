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
