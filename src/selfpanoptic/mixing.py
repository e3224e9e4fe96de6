"""The source domain: all synthia images plus the gta images that contain given classes, or one dataset.

Synthia labels no truck or train pixels, so a model trained on it alone never predicts those
classes. The thesis adds the GTA5 images whose labels contain *both* a truck and a train
(948 of 24,966), which brings the missing classes in without flooding the source with GTA's
stuff classes. :func:`select_images_with_all` is that rule for any list of classes. The
standard benchmarks train on one dataset whole (``mixing.sources: [synthia]`` or ``[gta]``):
:func:`mix_parts` without an ``extra`` manifest.
"""

from __future__ import annotations

import pandas as pd

from .classes import CLASS_NAMES
from .data.manifest import class_presence, column_name
from .errors import InputError


def select_images_with_all(manifest: pd.DataFrame, classes: list[str], min_pixels: int = 1) -> pd.Series:
    """Boolean mask over ``manifest`` rows: True where every class in ``classes`` has >= ``min_pixels`` pixels."""
    presence = class_presence(manifest, min_pixels)
    return presence[list(classes)].all(axis=1)


def mix_sources(
    base: pd.DataFrame, extra: pd.DataFrame, require_all: list[str], min_pixels: int = 1
) -> pd.DataFrame:
    """All rows of ``base`` followed by the rows of ``extra`` that contain every ``require_all`` class.

    Raises :class:`InputError` if no row of ``extra`` qualifies: a mixed source without the
    required classes defeats the point of mixing.
    """
    selected = extra[select_images_with_all(extra, require_all, min_pixels)]
    if selected.empty:
        counts = ", ".join(
            f"{name}: {int((extra[column_name('pixels', name)] >= min_pixels).sum())} images" for name in require_all
        )
        raise InputError(
            f"no image of dataset {extra['dataset'].iloc[0] if len(extra) else '?'} contains all of "
            f"{require_all} with at least {min_pixels} pixels each ({counts}); the mixed source would lack them",
            None,
            "check the gta dataset root, lower mixing.min_pixels or change mixing.require_all",
        )
    return pd.concat([base, selected], ignore_index=True)


def mix_parts(
    base: pd.DataFrame, extra: pd.DataFrame | None, require_all: list[str], min_pixels: int = 1
) -> dict[str, pd.DataFrame]:
    """The manifests that mixing compares, for :func:`class_statistics`; keys keep this order.

    Two sources: ``{base name, extra name, "<extra>_selected", "mixed"}``, ``mixed`` being
    :func:`mix_sources`. One source (``extra`` is None): ``{base name, "mixed"}``, ``mixed``
    being every image of ``base``; ``require_all`` and ``min_pixels`` do not apply.
    """
    if extra is None:
        return {base["dataset"].iloc[0]: base, "mixed": base.reset_index(drop=True)}
    mixed = mix_sources(base, extra, require_all, min_pixels)
    selected = extra[select_images_with_all(extra, require_all, min_pixels)]
    name = extra["dataset"].iloc[0]
    return {base["dataset"].iloc[0]: base, name: extra, f"{name}_selected": selected, "mixed": mixed}


def class_statistics(parts: dict[str, pd.DataFrame], min_pixels: int = 1) -> pd.DataFrame:
    """Per-class statistics of several manifests side by side, one row per class.

    For each manifest ``name``: ``{name}_images`` (images containing the class),
    ``{name}_pixels`` and ``{name}_pixel_share`` (percent of that manifest's labelled pixels).
    """
    table = pd.DataFrame({"class": list(CLASS_NAMES)})
    for name, manifest in parts.items():
        pixels = pd.Series([int(manifest[column_name("pixels", c)].sum()) for c in CLASS_NAMES])
        presence = class_presence(manifest, min_pixels)
        table[f"{name}_images"] = [int(presence[c].sum()) for c in CLASS_NAMES]
        table[f"{name}_pixels"] = pixels
        total = pixels.sum()
        table[f"{name}_pixel_share"] = (100.0 * pixels / total).round(3) if total else 0.0
    return table


def statistics_markdown(table: pd.DataFrame, parts: dict[str, pd.DataFrame], require_all: list[str]) -> str:
    """A page a person reads: image counts and the before/after class statistics of mixing.

    ``parts`` as :func:`mix_parts` returns them; with one source the ``mixed`` columns repeat the
    dataset's, so the page shows the dataset's alone.
    """
    single = len(parts) == 2
    shown = [next(iter(parts))] if single else list(parts)
    lines = ["# Source domain" if single else "# Mixed source domain", ""]
    for name in shown:
        lines.append(f"- **{name}**: {len(parts[name])} images")
    if single:
        rule = (f"Selection rule: every image of {shown[0]} (mixing.sources: [{shown[0]}]); "
                "mixing.require_all and mixing.min_pixels apply only to the two-source mix.")
    else:
        rule = (f"Selection rule: every image of the first source, plus the images of the second whose labels "
                f"contain all of: {', '.join(require_all)}.")
    lines += [
        "",
        rule,
        "",
        "| class | " + " | ".join(f"{n} images | {n} pixels %" for n in shown) + "|",
        "|---|" + "---:|---:|" * len(shown),
    ]
    for _, row in table.iterrows():
        cells = " | ".join(f"{row[f'{n}_images']} | {row[f'{n}_pixel_share']:.2f}" for n in shown)
        lines.append(f"| {row['class']} | {cells} |")
    missing = [r["class"] for _, r in table.iterrows() if r["mixed_pixels"] == 0]
    lines += ["", "Classes without any pixel in the source: " + (", ".join(missing) if missing else "none") + "."]
    return "\n".join(lines) + "\n"
