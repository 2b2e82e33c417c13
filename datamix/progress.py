"""Progress bars on stderr, shown only on a terminal so logs and CI output stay clean."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, *, total: int | None = None, unit: str = "it") -> Iterator[T]:
    yield from progress_bar(desc, total=total, unit=unit, items=items)


def progress_bar(desc: str, *, total: int | None = None, unit: str = "it", items: Iterable | None = None) -> tqdm:
    """A bar to `update()` by hand (or over `items`)."""
    # disable=None: tqdm turns itself off when stderr is not a TTY.
    return tqdm(items, desc=desc, total=total, unit=unit, disable=None, leave=False, dynamic_ncols=True)
