"""One reader/writer class per kind of HDF5 intermediate the workflow passes between stages.

Each class knows its file's stage name and datasets; ``Kind.open(path, expect_image_ids=...)``
refuses a file of another kind or of other images with one message naming the file and the fix;
``Kind.create(path, ...)`` writes atomically (the file appears under its name only when complete).

- :class:`~.cache.DatasetCache`: images, labels, instances at the working resolution;
- :class:`~.predictions.SemanticPrediction`, :class:`~.predictions.InstancePrediction`;
- :class:`~.pseudo_labels.SemanticPseudoLabels`, :class:`~.pseudo_labels.InstancePseudoLabels`.

:class:`~.views.StackView` reads one of a file's stacks per image, like the whole-split array it
replaces (:mod:`.views`).
"""

from __future__ import annotations

from .base import Intermediate, open_any
from .cache import DatasetCache
from .predictions import InstancePrediction, SemanticPrediction
from .pseudo_labels import InstancePseudoLabels, SemanticPseudoLabels
from .views import LazyStack, MappedStack, StackView, lazy_stacks

__all__ = [
    "DatasetCache", "InstancePrediction", "InstancePseudoLabels", "Intermediate", "LazyStack", "MappedStack",
    "SemanticPrediction", "SemanticPseudoLabels", "StackView", "lazy_stacks", "open_any",
]
