"""Problems found in a dataset's files, grouped by kind into one message.

Indexing a 25,000-image dataset must not stop at the first bad file, nor hide one kind of
problem behind another: every file is checked and each problem is recorded as a
:class:`Problem` of a kind from :data:`KINDS`. Two kinds (a file without its partner, an image
and label of different sizes) are real-dataset quirks that a per-dataset policy may let through;
the others (unreadable files, ids out of range) are always errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

SHOWN = 20
"""Files listed per group of a message; the rest are counted."""


@dataclass(frozen=True)
class Kind:
    """A kind of problem: its heading in messages and the policy that may let it through.

    Parameters
    ----------
    heading:
        Plural description of the files, e.g. "images without their label file".
    policy:
        The ``datasets.<name>`` config key (and ``--<key>`` option of ``selfpanoptic index``)
        that decides what happens to these files; None when they are always an error.
    """

    heading: str
    policy: str | None = None


KINDS: dict[str, Kind] = {
    "missing_label": Kind("images without their label file", "unpaired"),
    "missing_image": Kind("label files without their image", "unpaired"),
    "size_mismatch": Kind("label files whose size differs from their image", "size_mismatch"),
    "unreadable": Kind("files that cannot be read"),
    "id_range": Kind("label files with ids out of range"),
    "instance_size": Kind("instance maps whose size differs from their label file"),
    "depth_size": Kind("depth or disparity files whose size differs from their image"),
}
"""Every kind of problem, in the order messages list them."""

POLICIES: dict[str, tuple[str, ...]] = {
    "unpaired": ("error", "skip"),
    "size_mismatch": ("error", "skip", "resize"),
}
"""The policies of a dataset and their values; the first value is the default."""

_ACTIONS = {"skip": "left out of the manifest", "resize": "label resized to its image (nearest)"}


@dataclass(frozen=True)
class Problem:
    """One problem with one file.

    Parameters
    ----------
    kind:
        A key of :data:`KINDS`.
    path:
        The file concerned; it leads the file's line in messages.
    detail:
        What is wrong with this file.
    fix:
        What to do about this file, if it is specific to it.
    """

    kind: str
    path: Path
    detail: str
    fix: str | None = None


class DataFileError(InputError):
    """An :class:`InputError` about one dataset file that knows its kind (a key of :data:`KINDS`)."""

    def __init__(self, kind: str, problem: str, path: str | Path, fix: str | None = None):
        super().__init__(problem, path, fix)
        self.kind = kind


def problem_from_error(err: InputError, path: str | Path) -> Problem:
    """The :class:`Problem` of an error raised while reading ``path``.

    Errors without a kind come from decoding (:mod:`selfpanoptic.pngio`): the file is unreadable.
    """
    return Problem(getattr(err, "kind", "unreadable"), Path(err.path or path), err.problem, err.fix)


def policy_setting(dataset: str | None, key: str, value: str) -> str:
    """How to set a policy, e.g. ```datasets.gta.unpaired: skip` (`--unpaired skip`)``."""
    option = f"`--{key.replace('_', '-')} {value}`"
    return option if dataset is None else f"`datasets.{dataset}.{key}: {value}` ({option})"


def _policy_fix(kind: str, dataset: str | None, layout_hint: str | None) -> str:
    if KINDS[kind].policy == "unpaired":
        layout = f", laid out as {layout_hint}" if layout_hint else ""
        return (f"add the missing files{layout}; or set {policy_setting(dataset, 'unpaired', 'skip')} "
                "to index the other files without them")
    return (f"re-export the pair at one size; or set {policy_setting(dataset, 'size_mismatch', 'resize')} "
            "to resample the label to its image (nearest), or `skip` to leave the pair out")


def group_lines(problems: Iterable[Problem], fix_of=None, suffix_of=None, shown: int = SHOWN) -> list[str]:
    """Lines of ``problems`` grouped by kind: a heading with the count, the files, then the fix.

    Parameters
    ----------
    problems:
        The problems, in any order; each group is sorted by path.
    fix_of:
        ``fix_of(kind, group)`` gives a group's fix line (None: the distinct fixes of its files).
    suffix_of:
        ``suffix_of(kind)`` gives text appended to a group's heading.
    shown:
        Files listed per group; the others are counted as "... and N more".
    """
    by_kind: dict[str, list[Problem]] = {}
    for problem in problems:
        by_kind.setdefault(problem.kind, []).append(problem)
    lines = []
    for kind in [k for k in KINDS if k in by_kind]:
        group = sorted(by_kind[kind], key=lambda p: str(p.path))
        suffix = suffix_of(kind) if suffix_of else ""
        lines.append(f"{KINDS[kind].heading} ({len(group)}){suffix}:")
        lines += [f"  {p.path}: {p.detail}" for p in group[:shown]]
        if len(group) > shown:
            lines.append(f"  ... and {len(group) - shown} more")
        fix = fix_of(kind, group) if fix_of else None
        if fix is None:
            fix = "; ".join(sorted({p.fix for p in group if p.fix})) or None
        if fix:
            lines.append(f"  fix: {fix}")
    return lines


class DatasetProblemsError(InputError):
    """Files of a dataset that cannot be indexed, grouped by kind of problem in one message.

    Parameters
    ----------
    dataset:
        How the message names the dataset: its configured name (``gta``) when known.
    problems:
        Every problem found.
    config_name:
        The dataset's key under ``datasets`` in the config; a group that a policy could let
        through names the exact setting. None names only the command-line option.
    layout_hint:
        The format's folder layout, for the fix of missing partner files.
    skipped:
        Files that the dataset's policies would have let through, counted in the heading.
    outcome:
        What the problems mean, after the dataset's name in the heading.
    note:
        Appended to the heading, e.g. "nothing was written".
    """

    def __init__(
        self, dataset: str, problems: list[Problem], config_name: str | None = None,
        layout_hint: str | None = None, skipped: int = 0, outcome: str = "has unusable files", note: str = "",
    ):
        self.dataset = dataset
        self.problems = problems
        files = len({p.path for p in problems})
        heading = f"dataset {dataset} {outcome}: {len(problems)} problem(s) in {files} file(s)"
        if skipped:
            heading += f" (besides {skipped} file(s) that its policies let through)"
        if note:
            heading += f"; {note}"

        def fix_of(kind, group):
            return _policy_fix(kind, config_name, layout_hint) if KINDS[kind].policy else None

        super().__init__("\n".join([heading, *group_lines(problems, fix_of)]))


def warning_lines(dataset: str, warnings: list[Problem], policies: dict[str, str], config_name: str | None) -> list[str]:
    """The grouped lines that report what the policies did to ``warnings``' files."""
    heading = f"warning: dataset {dataset}: {len(warnings)} file(s) handled by its policies"

    def suffix_of(kind):
        key = KINDS[kind].policy
        return f", {_ACTIONS[policies[key]]} by {policy_setting(config_name, key, policies[key])}"

    return [heading, *group_lines(warnings, suffix_of=suffix_of)]


__all__ = [
    "DataFileError", "DatasetProblemsError", "KINDS", "Kind", "POLICIES", "Problem",
    "group_lines", "policy_setting", "problem_from_error", "warning_lines",
]
