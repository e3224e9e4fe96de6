"""The mixed source domain: all synthia images plus the gta images that contain given classes.

Synthia labels no truck or train pixels, so a model trained on it alone never predicts those
classes. The thesis adds the GTA5 images whose labels contain *both* a truck and a train
(948 of 24,966), which brings the missing classes in without flooding the source with GTA's
stuff classes. :func:`select_images_with_all` is that rule for any list of classes.
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
    base: pd.DataFrame, extra: pd.DataFrame, require_all: list[str], min_pixels: int = 1
) -> dict[str, pd.DataFrame]:
    """The manifests that mixing compares: ``{base name, extra name, "<extra>_selected", "mixed"}``.

    ``mixed`` is :func:`mix_sources`; the others are what went into it, for
    :func:`class_statistics`. Keys keep this order.
    """
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
    """A page a person reads: image counts and the before/after class statistics of mixing."""
    lines = ["# Mixed source domain", ""]
    for name, manifest in parts.items():
        lines.append(f"- **{name}**: {len(manifest)} images")
    lines += [
        "",
        f"Selection rule: every image of the first source, plus the images of the second whose labels "
        f"contain all of: {', '.join(require_all)}.",
        "",
        "| class | " + " | ".join(f"{n} images | {n} pixels %" for n in parts) + "|",
        "|---|" + "---:|---:|" * len(parts),
    ]
    for _, row in table.iterrows():
        cells = " | ".join(f"{row[f'{n}_images']} | {row[f'{n}_pixel_share']:.2f}" for n in parts)
        lines.append(f"| {row['class']} | {cells} |")
    missing = [r["class"] for _, r in table.iterrows() if r[f"{list(parts)[-1]}_pixels"] == 0]
    lines += ["", "Classes without any pixel in the mixed source: " + (", ".join(missing) if missing else "none") + "."]
    return "\n".join(lines) + "\n"
