"""Where a build's parallel work runs: `local` (a process pool on this machine, the default) or `ray`.

Both give the same bytes: the driver (the `datamix build` process) decides everything that needs one
place (ranking, counts, order, shard plan), an engine only runs the per-item work and writes shards.
An engine offers two things: `mapper(workers)`, an ordered map with the contract of builder/workers.py,
and `write_shards(...)`, step 4 of a build. Ray is an optional extra, imported only when asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from datamix.builder.workers import Mapper, mapper
from datamix.builder.write import write_shards
from datamix.errors import EngineError, InputError
from datamix.mixdir import MixWriter

ENGINES = ("local", "ray")
RAY_EXTRA = "pip install 'datamix[ray]'"


class Engine(Protocol):
    def mapper(self, workers: int) -> AbstractContextManager[Mapper]: ...

    def write_shards(self, bucket_dir: Path, writer: MixWriter, roots: dict[str, str | None], max_pixels: int,
                     pool: Mapper, skip_before: int) -> None: ...


class LocalEngine:
    """`workers` spawned processes on this machine (or none for one worker)."""

    def mapper(self, workers: int) -> AbstractContextManager[Mapper]:
        return mapper(workers)

    def write_shards(self, bucket_dir: Path, writer: MixWriter, roots: dict[str, str | None], max_pixels: int,
                     pool: Mapper, skip_before: int) -> None:
        write_shards(bucket_dir, writer, roots, max_pixels, pool, skip_before)


@contextmanager
def open_engine(name: str, *, workers: int, address: str | None, out: Path, reads: list[Path],
                echo=print) -> Iterator[Engine]:
    """The engine for one build writing into `out` and reading `reads` (inputs, image roots); a Ray started here
    (no `address`, none running) is shut down at the end."""
    check_engine(name, address)
    if name == "local":
        yield LocalEngine()
        return
    with ray_engine().session(address, workers, out, reads, echo) as engine:
        yield engine


def check_engine(name: str, address: str | None) -> None:
    """The engine can be used (Ray installed for `ray`): asked before anything is created on disk."""
    if name not in ENGINES:
        raise InputError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    if name == "local" and address is not None:
        raise InputError("--address names a Ray cluster: it goes with --engine ray")
    if name == "ray":
        ray_engine()


def ray_engine():
    """The Ray engine module, or one line naming the extra to install."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise EngineError(f"--engine ray needs Ray, an optional extra: {RAY_EXTRA}") from None
    from datamix.builder import ray_engine as module

    return module
