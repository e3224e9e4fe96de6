"""What the panoptic stages share: the ``panoptic`` config section as the library's fusion settings.

``fuse-panoptic`` and ``predict-panoptic`` both clean and fuse with
:func:`selfpanoptic.panoptic.fuse`; the section's keys are read here, once.
"""

from __future__ import annotations

from typing import Any, Mapping


def fusion_settings(section: Mapping[str, Any]):
    """The :class:`selfpanoptic.panoptic.Fusion` of a validated ``panoptic`` config section.

    ``stuff_min_area`` as is; ``morphology`` (``opening_radius``, ``closing_radius``,
    ``min_size``) when ``morphology.enabled``, else no clean-up.
    """
    from ..panoptic import Fusion, Morphology

    morphology = section["morphology"]
    cleanup = (Morphology(morphology["opening_radius"], morphology["closing_radius"], morphology["min_size"])
               if morphology["enabled"] else None)
    return Fusion(section["stuff_min_area"], cleanup)
