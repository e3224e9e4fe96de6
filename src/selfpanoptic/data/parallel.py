"""A function mapped over a dataset's samples in worker processes, its results in the samples' order.

The data stages (``index``, ``cache``) spend their time decoding PNGs (Pillow; pypng, in pure
Python, for 16-bit files), resizing and counting pixels, much of it holding the GIL: threads gave
``index`` no speed-up, processes do. :func:`ordered_map` is what both use:

- **same result**: the results come back in the items' order, so a caller that writes them as
  they arrive writes what one process would have;
- **spawned, not forked**: a worker is a fresh interpreter, so it inherits no thread (tqdm's
  monitor), lock or open HDF5 file of the parent, and the code works wherever ``fork`` does not.
  The function, with its bound arguments (a dataset reader and its file list), is pickled to each
  worker once, when it starts; each task carries only its items;
- **bounded memory**: at most :data:`PREFETCH` chunks per worker are in flight, and the parent
  consumes the results as they arrive, so memory holds a few samples, never the split;
- **one thread per worker**: the workers count as the job's cores, so numerical libraries in them
  must not start threads of their own (:data:`SINGLE_THREAD_ENV`);
- **same errors**: a :class:`~selfpanoptic.errors.SelfPanopticError` raised in a worker (a file
  that cannot be read, naming it) is raised in the parent as the same exception, at the item
  where one process would have raised it; a worker that dies (killed for memory) ends the map
  with an error, where a :class:`multiprocessing.pool.Pool` would wait for its task forever.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from ..errors import SelfPanopticError

PREFETCH = 2
"""Chunks in flight per worker: one being worked on and one queued, so that no worker waits for the parent."""

MOST_PER_CHUNK = 8
"""Items per task at most, when the caller leaves it to :func:`ordered_map`."""
CHUNKS_PER_WORKER = 4
"""Tasks per worker at least, when the items allow it: one slow chunk at the end then idles the
other workers for a quarter of a worker's share at most."""

SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""What the workers start with: numpy's BLAS reads it when imported, torch when it starts its pool.
Without it, every worker of a 64-core node would start 64 idle BLAS threads."""

_work: Callable[[Any], Any] | None = None
"""The function of this worker process (:func:`_start_worker`)."""


def _start_worker(work: Callable[[Any], Any]) -> None:
    """Initializer of a worker process: keep libraries to one thread, and keep ``work`` for its tasks."""
    global _work
    os.environ.update(SINGLE_THREAD_ENV)  # for libraries the work imports later
    if "torch" in sys.modules:  # imported already (unpickling ``work``): set it directly, never import it
        sys.modules["torch"].set_num_threads(1)
    _work = work


@dataclass(frozen=True)
class _Raised:
    """A :class:`SelfPanopticError` raised in a worker, as plain data.

    Pickle rebuilds an exception by calling its class with ``args`` (the message), which loses the
    attributes of :class:`~selfpanoptic.errors.InputError` (``path``, ``fix``) and fails for
    classes whose ``__init__`` takes other arguments (``DataFileError``). This keeps the class,
    ``args`` and attributes, and :meth:`rebuild` sets them back without calling ``__init__``.
    """

    kind: type
    args: tuple
    state: dict

    def rebuild(self) -> BaseException:
        error = self.kind.__new__(self.kind, *self.args)
        error.args = self.args
        error.__dict__.update(self.state)
        return error


def _run_chunk(items: list) -> list:
    """A worker's task: ``work(item)`` of each item, in order; a :class:`_Raised` ends the list, as
    the error would have ended the loop of one process."""
    results = []
    for item in items:
        try:
            results.append(_work(item))
        except SelfPanopticError as err:
            results.append(_Raised(type(err), err.args, dict(err.__dict__)))
            break
    return results


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` updated with ``values`` inside the block, restored after it."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _chunk_results(future: Future) -> list:
    """The results of a chunk's task; a worker that died is a clear error, not a bare ``BrokenProcessPool``."""
    try:
        return future.result()
    except BrokenProcessPool as err:
        raise RuntimeError("a worker process ended abruptly: killed (e.g. for lack of memory: rerun with fewer "
                           "--threads or more memory), or it failed to start (see the messages above)") from err


def _pooled(pool: ProcessPoolExecutor, items: Sequence, chunksize: int, in_flight: int) -> Iterator[Any]:
    """The results of ``items`` (chunks of ``chunksize``) from ``pool``, in order, ``in_flight`` chunks at most."""
    chunks = (list(items[start:start + chunksize]) for start in range(0, len(items), chunksize))
    pending: deque[Future] = deque()
    # A spawning pool starts a worker on each submit while none is idle: the workers start here,
    # and read the environment here.
    with _environment(SINGLE_THREAD_ENV):
        for chunk in chunks:
            pending.append(pool.submit(_run_chunk, chunk))
            if len(pending) == in_flight:
                break
    while pending:
        results = _chunk_results(pending.popleft())
        chunk = next(chunks, None)
        if chunk is not None:  # queued before the caller gets the results, so that the workers keep busy
            pending.append(pool.submit(_run_chunk, chunk))
        for result in results:
            if isinstance(result, _Raised):
                raise result.rebuild()
            yield result


@contextlib.contextmanager
def ordered_map(work: Callable[[Any], Any], items: Sequence, workers: int,
                chunksize: int | None = None) -> Iterator[Iterator[Any]]:
    """``work(item)`` of every item, in the items' order, computed by ``workers`` processes.

    Parameters
    ----------
    work:
        A picklable callable: a module-level function, or a :func:`functools.partial` of one whose
        bound arguments (e.g. a dataset reader) every item needs; sent to each worker once.
    items:
        What ``work`` is called with, one at a time (e.g. sample positions); picklable.
    workers:
        Worker processes; 1 (or a single chunk of items) computes everything in this process,
        with nothing started and nothing pickled.
    chunksize:
        Items per task: more amortises the cost of a task (about a millisecond) over cheap items,
        fewer keeps less memory in flight when each result is a large array. None: at most
        :data:`MOST_PER_CHUNK`, and small enough to give every worker :data:`CHUNKS_PER_WORKER`
        tasks, so that a small split is still shared out evenly.

    Yields
    ------
    Iterator
        The results, as they come, in order; the block's end stops the workers (pending tasks
        are cancelled, e.g. when the caller raises).

    Raises
    ------
    SelfPanopticError
        What ``work`` raised for the first item it failed on (the same class, message and
        attributes as in one process); items after it are not passed on.
    RuntimeError
        A worker process died (killed, e.g. for lack of memory).
    """
    if chunksize is None:
        chunksize = max(1, min(MOST_PER_CHUNK, len(items) // (max(1, workers) * CHUNKS_PER_WORKER)))
    workers = min(workers, -(-len(items) // chunksize))
    if workers <= 1:
        yield map(work, items)
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(work,))
    try:
        yield _pooled(pool, items, chunksize, workers * PREFETCH)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["PREFETCH", "SINGLE_THREAD_ENV", "ordered_map"]
