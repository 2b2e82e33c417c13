"""`datamix build --engine ray`: the same build, its parallel work run as Ray tasks, byte-identical output.

What must be decided in one place stays on the driver (the `datamix build` process): the seeded ranking
and exact per-source counts (builder/pick.py), the global order (builder/write.py), the shard plan
(mixdir.shards.ShardPlan), the journal and the index. Ray runs the heavy work as tasks:
- converting each source (one task per source, cached under `.work/convert/` as in a local build);
- verifying images, batches of rows per task, results taken back in input order (`RayMapper.imap`);
- packing samples (`pack_chunk`: images read and re-checked, JSON encoded, tar members) over runs of
  consecutive positions. The packed bytes stay in Ray's object store; only their sizes and index rows
  come back to the driver, which replays the cut rule over the sizes;
- writing each shard (`write_shard_task`) from the packed bytes of the chunks it spans, submitted as soon as
  the plan has cut it. Results are taken in plan order, so the journal is always a gap-free prefix of the
  plan and a killed driver resumes exactly as a local build does.

The structure follows img2dataset's distributor and NeMo-Curator's executors (pure shard-sized jobs, the
driver owns the plan). Ray Data's `write_webdataset` is not used: it names files by UUID and cuts shards at
block boundaries, which depend on scheduling. Tasks are deterministic, so Ray's retries (an OSError, a dead
worker, a lost object rebuilt from lineage) give the same bytes. A shard is written under a temporary name
unique to its attempt and renamed when complete: a dead attempt leaves no visible shard, only a `.tmp` that
the build removes at the end. The output folder must be on a file system every node sees at the same path:
`check_shared_folders` proves it from each node before any work is sent, with the inputs and image roots.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from datamix.builder.workers import Mapper
from datamix.builder.write import buckets, input_changed, ordered_lines, ready_sample
from datamix.errors import BuildError, DatamixError, EngineError
from datamix.mixdir import MixWriter
from datamix.mixdir.shards import ShardRecord, shard_pattern, write_shard
from datamix.paths import remove_file
from datamix.progress import progress_bar

STORE_SHARE = 0.5  # of the cluster's object store, for the packed bytes of shard writes in flight
DEFAULT_BYTES_IN_FLIGHT = 2 << 30  # where the cluster reports no object store size
PACK_SAMPLES = 256  # samples per pack task: ~50 ms of work, against ~1 ms to schedule a task
RETRIES = 3  # Ray's retries of a task whose worker died or that raised a (transient) OSError
PROBE_TIMEOUT_S = 5.0  # a cluster address that does not accept a connection by then is reported, not waited on
CHECK_FILE = ".engine-check"  # in the output folder: written by the driver, read back on every node, removed

TASK = {"max_retries": RETRIES, "retry_exceptions": [OSError]}


# ------------------------------------------------------------------------------------------- the session

@contextmanager
def session(address: str | None, workers: int, out: Path, reads: list[Path], echo=print) -> Iterator[RayEngine]:
    """Attach to the cluster at `address` ("auto", "host:port", "ray://host:port"), or start a local Ray with
    `workers` CPUs; one already initialised in this process is used as it is. Shut down only if started here.
    Every node must see the folder `out` (written there) and the paths in `reads` (inputs, image roots)."""
    started = not ray.is_initialized()
    if started:
        context = _connect(address, workers)
        where = f"the Ray cluster at {address}" if address else f"a local Ray with {workers} CPU(s)"
        dashboard = getattr(context, "dashboard_url", None)
        echo(f"      engine: {where}" + (f"; dashboard http://{dashboard}" if dashboard else ""))
    try:
        check_shared_folders(out, reads)
        resources = ray.cluster_resources()
        yield RayEngine(max(1, int(resources.get("CPU", 1))), write_budget(resources))
    finally:
        if started:
            ray.shutdown()


def _connect(address: str | None, workers: int):
    if address not in (None, "auto"):
        _probe(address)
    try:
        if address is None:
            # "local": a new Ray of our own even where RAY_ADDRESS or a `ray start` on this machine names a
            # cluster (ray.init would attach to it and refuse num_cpus); --address is how to use that one.
            return ray.init(address="local", num_cpus=max(1, workers), logging_level=logging.WARNING)
        return ray.init(address=address, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = f"Ray at {address}" if address else "a local Ray"
        raise EngineError(f"cannot start or attach to {where}: {first}") from None


def _probe(address: str) -> None:
    """A TCP connect first: `ray.init` waits minutes on an address where nothing answers."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise EngineError(f"--address {address!r}: expected auto, host:port or ray://host:port")
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise EngineError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one with "
                          "`ray start --head` or check --address") from None


def write_budget(resources: dict) -> int:
    """Packed bytes the shard writes in flight may hold: a share of the cluster's object store."""
    return int(resources.get("object_store_memory", 0) * STORE_SHARE) or DEFAULT_BYTES_IN_FLIGHT


# --------------------------------------------------------------------------------------- the ordered map

@ray.remote(**TASK)
def _map_chunk(fn: Callable, items: list) -> list:
    return [fn(item) for item in items]


def in_order(refs: Iterable, window: int) -> Iterator:
    """The result of each ref in submission order, with at most `window` submitted ahead of the one awaited:
    `refs` is consumed lazily, so memory stays bounded and the results never depend on timing."""
    pending: deque = deque()
    for ref in refs:
        pending.append(ref)
        if len(pending) >= window:
            yield result(pending.popleft())
    while pending:
        yield result(pending.popleft())


def result(ref):
    """ray.get, with an error raised in a task re-raised as itself (a datamix error, an OSError...), so the CLI
    prints it as the same one line as in a local build, not as Ray's remote traceback."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, Exception):
            raise exc.cause from None
        raise


def batched(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class RayMapper(Mapper):
    """builder/workers.py's contract (ordered `imap`) over Ray tasks of `chunksize` items each."""

    def __init__(self, window: int):
        super().__init__(None)
        self.window = window

    def imap(self, fn: Callable, items: Iterable, chunksize: int = 32) -> Iterator:
        chunks = (_map_chunk.remote(fn, chunk) for chunk in batched(items, chunksize))
        return (result for results in in_order(chunks, self.window) for result in results)


# ------------------------------------------------------------------------------------------ the tasks

@ray.remote(num_returns=2, **TASK)
def pack_chunk(lines: list[str], roots: dict[str, str | None], max_pixels: int, width: int):
    """Samples of consecutive positions ready to write: (index records with sizes, their packed bytes end to end).
    The driver fetches only the first; the second, one numpy array (which Ray stores and hands to the write
    tasks without a copy), stays in the object store until the shards spanning it are written."""
    records, packed = [], []
    for line in lines:
        entry = json.loads(line)
        sample = ready_sample((roots[entry["row"]["source"]], entry, max_pixels, width))
        if isinstance(sample, str):
            return [input_changed(entry, sample)], np.zeros(0, dtype=np.uint8)
        records.append((replace(sample, packed=b""), len(sample.packed)))
        packed.append(sample.packed)
    return records, np.frombuffer(b"".join(packed), dtype=np.uint8)


@ray.remote(**TASK)
def write_shard_task(out_dir: str, name: str, first: int, spans: list[tuple[int, list[int]]], *chunks: np.ndarray):
    """One shard from its samples' bytes in `chunks` (per chunk: the byte offset of its first sample here and
    each sample's size), under a temporary name of its own attempt (a retry never writes into a dead attempt's
    file), renamed into place when whole. Only views of the stored arrays are taken: nothing is copied."""
    def samples():
        for chunk, (start, sizes) in zip(chunks, spans):
            view = memoryview(chunk)
            for size in sizes:
                yield view[start:start + size]
                start += size

    return write_shard(Path(out_dir), name, first, samples(), attempt=secrets.token_hex(4))


@ray.remote(num_cpus=0)
def _unseen(token_file: str, token: str, reads: list[str]) -> list[str]:
    """What this node cannot see, each as "host: path": the token the driver wrote, the paths it reads."""
    host = socket.gethostname()
    try:
        missing = [] if Path(token_file).read_text() == token else [token_file]
    except OSError:
        missing = [token_file]
    return [f"{host}: {path}" for path in missing + [p for p in reads if not os.path.exists(p)]]


def check_shared_folders(out: Path, reads: list[Path]) -> None:
    """Every alive node must see `out` (a token written here is read back there) and the paths in `reads`,
    at the same paths: a shard written out of sight, or images missing on one node, would fail far later."""
    token_file, token = out / CHECK_FILE, secrets.token_hex(8)
    token_file.write_text(token)
    try:
        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
        args = (str(token_file.resolve()), token, sorted({str(Path(p).resolve()) for p in reads}))
        unseen = ray.get([_unseen.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
                          .remote(*args) for node in nodes])
    finally:
        remove_file(out, CHECK_FILE)
    unseen = sorted({item for items in unseen for item in items})
    if unseen:
        more = f" (+{len(unseen) - 3} more)" if len(unseen) > 3 else ""
        raise EngineError(f"not visible from every Ray node: {'; '.join(unseen[:3])}{more}; the output folder, "
                          "inputs and image roots must be on a file system every node mounts at the same path")


# ------------------------------------------------------------------------------------- the write step

@dataclass
class _Shard:
    """A shard the plan has opened: the packed-bytes chunks it spans, as [ref, byte offset, sample sizes]."""

    name: str
    first: int
    spans: list[list] = field(default_factory=list)

    def add(self, ref, at: int, size: int) -> None:
        """One more sample: `size` bytes at byte `at` of the chunk `ref`."""
        if self.spans and self.spans[-1][0] is ref:
            self.spans[-1][2].append(size)
        else:
            self.spans.append([ref, at, [size]])

    @property
    def samples(self) -> int:
        return sum(len(sizes) for _, _, sizes in self.spans)

    @property
    def bytes(self) -> int:
        return sum(sum(sizes) for _, _, sizes in self.spans)


@dataclass
class RayEngine:
    cpus: int
    bytes_in_flight: int = 0  # shard writes in flight hold at most this many packed bytes (0: no bound)

    @property
    def window(self) -> int:
        """Tasks submitted ahead of the one awaited: enough to keep every CPU busy, few enough to bound memory."""
        return 2 * self.cpus

    def mapper(self, workers: int) -> AbstractContextManager[Mapper]:
        return nullcontext(RayMapper(self.window))

    def write_shards(self, bucket_dir: Path, writer: MixWriter, roots: dict[str, str | None], max_pixels: int,
                     pool: Mapper, skip_before: int) -> None:
        packs = deque()
        writes: deque[tuple[_Shard, object]] = deque()
        bar = progress_bar("shards", unit="shard")
        shard: _Shard | None = None
        try:
            chunks = iter(self._chunks(bucket_dir, skip_before))
            self._submit_packs(packs, chunks, roots, max_pixels, writer.width)
            while packs:
                records_ref, bytes_ref = packs.popleft()
                at = 0  # byte offset of the sample in its chunk
                for item in result(records_ref):
                    if isinstance(item, BuildError):
                        raise item
                    sample, size = item
                    if writer.place(sample, size):
                        if shard is not None:
                            writes.append(self._submit_write(writer, shard))
                        shard = _Shard(writer.shards.shard_name(writer.shards.index), writer.position - 1)
                    shard.add(bytes_ref, at, size)
                    at += size
                del records_ref, bytes_ref  # only the open shard and the writes in flight keep the bytes
                self._collect(writes, writer, bar, keep=self.window)
                self._submit_packs(packs, chunks, roots, max_pixels, writer.width)
            if shard is not None:
                writes.append(self._submit_write(writer, shard))
            self._collect(writes, writer, bar, keep=0)
        except BaseException:
            # Nothing may rename a shard into the folder once the build has failed and let go of its lock.
            for ref in [r for pair in packs for r in pair] + [ref for _, ref in writes]:
                ray.cancel(ref, force=True)
            raise
        finally:
            bar.close()
            _remove_dead_attempts(writer)

    def _chunks(self, bucket_dir: Path, skip_before: int) -> Iterator[list[str]]:
        for bucket in buckets(bucket_dir):
            yield from batched(ordered_lines(bucket, skip_before), PACK_SAMPLES)

    def _submit_packs(self, packs: deque, chunks: Iterator, roots: dict, max_pixels: int, width: int) -> None:
        for lines in islice(chunks, max(0, self.window - len(packs))):
            packs.append(pack_chunk.remote(lines, roots, max_pixels, width))

    def _submit_write(self, writer: MixWriter, shard: _Shard):
        spans = [(at, sizes) for _, at, sizes in shard.spans]
        refs = [ref for ref, _, _ in shard.spans]
        return shard, write_shard_task.remote(str(writer.out), shard.name, shard.first, spans, *refs)

    def _collect(self, writes: deque, writer: MixWriter, bar, keep: int) -> None:
        """Journal finished shards in plan order: every one that is done, then wait until at most `keep` are left
        and their packed bytes fit in `bytes_in_flight` (large shards: fewer in flight, not the object store full)."""
        while writes:
            shard, ref = writes[0]
            held = sum(s.bytes for s, _ in writes)
            fits = not self.bytes_in_flight or held <= self.bytes_in_flight
            if len(writes) <= keep and fits and not ray.wait([ref], timeout=0)[0]:
                return
            record: ShardRecord = result(ref)
            if (record.name, record.first, record.samples) != (shard.name, shard.first, shard.samples):
                raise BuildError(f"{shard.name}: written as {record.name} from {record.first} with {record.samples}"
                                 f" samples, planned from {shard.first} with {shard.samples}")
            writer.shards.add_record(record)
            writes.popleft()
            bar.update(1)
            bar.set_postfix(samples=record.first + record.samples)


def _remove_dead_attempts(writer: MixWriter) -> None:
    """The temporary files of attempts whose worker died (their retry wrote the shard): only this mix's names."""
    pattern = shard_pattern(writer.name)
    for name in os.listdir(writer.out):
        if name.endswith(".tmp") and pattern.fullmatch(name):
            remove_file(writer.out, name)
