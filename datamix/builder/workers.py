"""An ordered map over a process pool, or in-process for one worker: same results, same order."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any


class Mapper:
    def __init__(self, pool: Any | None):
        self._pool = pool

    def imap(self, fn: Callable, items: Iterable, chunksize: int = 32) -> Iterator:
        if self._pool is None:
            return map(fn, items)
        # imap (not imap_unordered): results come back in input order, so outputs never depend on timing.
        return self._pool.imap(fn, items, chunksize=chunksize)


@contextmanager
def mapper(workers: int) -> Iterator[Mapper]:
    if workers <= 1:
        yield Mapper(None)
        return
    # spawn, not fork: the parent holds polars/Arrow thread pools that a forked child must not inherit.
    pool = multiprocessing.get_context("spawn").Pool(workers)
    try:
        yield Mapper(pool)
        pool.close()  # let the workers finish and exit cleanly (terminate() leaks their semaphores)
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
