"""Per-image views of a split's stacks: what a whole-split ``(N, H, W)`` array was, without holding one.

A stage that indexes a stack by image reads it through a view rather than as a whole array
(``h5["instances"][()]``): ``view[i]`` reads image ``i`` from the open file (one chunk) and converts
it to the view's dtype, ``view[a:b]`` (or a sequence of indices) stacks those images, and
``len(view)`` is the number of images. Memory then depends on the images a batch touches, not
on the number of images in the split. The values are those of the whole-array read (the same
per-element conversion), so results stay bit-identical.

- :class:`StackView`: one stack of an open intermediate (read through its ``read``, so a
  preloaded :class:`~.cache.DatasetCache` is read from memory);
- :class:`MappedStack`: another stack (a view or an array) with a function of ``(index, image)``
  applied per image, e.g. the per-image draws of the ground-truth guidance ablation.

A view is used while its file is open. In a data-loading worker (a forked process) call
:meth:`LazyStack.reopen` first, as the training engine does for every object a step's
``caches`` lists (:func:`lazy_stacks` picks the views out of a step's arrays).
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Iterable

import numpy as np


class LazyStack:
    """An ``(N, ...)`` stack read one image at a time; a subclass defines :meth:`_read` and :attr:`shape`."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        """``view[i]``: image ``i`` (negative counts from the end); ``view[a:b]``, ``view[range]``,
        ``view[list or array of indices]``: those images stacked ``(k, ...)``."""
        if isinstance(index, slice):
            return self._stack(range(*index.indices(len(self))))
        if isinstance(index, (range, list, tuple, np.ndarray)):
            return self._stack(index)
        return self._read(self._position(index))

    def _position(self, index: Any) -> int:
        try:
            position = operator.index(index)
        except TypeError:
            raise TypeError(f"a stack is indexed by an image index, a slice or a sequence of indices, not "
                            f"{type(index).__name__}") from None
        count = len(self)
        if not -count <= position < count:
            raise IndexError(f"image {position} is out of range: the stack holds {count} images")
        return position + count if position < 0 else position

    def _stack(self, indices: Iterable) -> np.ndarray:
        arrays = [self._read(self._position(i)) for i in indices]
        return np.stack(arrays) if arrays else np.empty((0, *self.shape[1:]), dtype=self.dtype)

    def _read(self, position: int) -> np.ndarray:
        raise NotImplementedError

    def reopen(self) -> None:
        """Give this process its own handle on the file behind the stack (a forked data-loading worker)."""


class StackView(LazyStack):
    """Stack ``key`` of the open intermediate ``owner``, read per image and converted to ``dtype``.

    ``owner``: an open :class:`~.base.Intermediate` (kept open while the view is used);
    ``dtype``: the type each image is converted to (default: the stack's own).
    """

    def __init__(self, owner, key: str, dtype: Any = None):
        dataset = owner.h5[key]
        self.owner, self.key = owner, key
        self.shape = tuple(dataset.shape)
        self.dtype = np.dtype(dataset.dtype if dtype is None else dtype)

    def _read(self, position: int) -> np.ndarray:
        return np.asarray(self.owner.read(self.key, position)).astype(self.dtype, copy=False)

    def reopen(self) -> None:
        self.owner.reopen()


class MappedStack(LazyStack):
    """``function(index, base[index])`` for every image of ``base`` (a :class:`LazyStack`, an
    array or a list of arrays), computed when the image is read; ``dtype``: the type ``function`` returns."""

    def __init__(self, base, function: Callable[[int, np.ndarray], np.ndarray], dtype: Any):
        self.base, self.function = base, function
        if hasattr(base, "shape"):
            self.shape = tuple(base.shape)
        else:
            self.shape = (len(base), *(np.shape(base[0]) if len(base) else ()))
        self.dtype = np.dtype(dtype)

    def _read(self, position: int) -> np.ndarray:
        return self.function(position, self.base[position])

    def reopen(self) -> None:
        if isinstance(self.base, LazyStack):
            self.base.reopen()


def lazy_stacks(*arrays) -> tuple[LazyStack, ...]:
    """The :class:`LazyStack` objects among ``arrays`` (arrays and None are left out): what a
    training step lists in its ``caches`` besides its dataset caches, to be reopened per worker."""
    return tuple(a for a in arrays if isinstance(a, LazyStack))
