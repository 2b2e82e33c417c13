"""Rolling WebDataset shards: `<name>-000000.tar`, ..., the bytes `webdataset.TarWriter` writes.

- `pack_sample` turns one sample into its tar members (header, data, padding) as plain bytes, so a
  build's worker processes do the headers and the main process only appends ready bytes. The members
  are exactly TarWriter's (suffixes in sorted order, PAX-format headers, mode 0444; tested byte for byte),
  without importing webdataset, which imports torch (2 s of a build).
- Where shards begin is decided in one place, `ShardPlan`, from the packed sizes alone, so a writer in
  this process and shard files written elsewhere (a cluster's tasks) always cut at the same samples.
- A shard is written under `<file>.tmp` and renamed when complete, so no partial shard is ever visible;
  `write_shard` writes a whole shard file from its packed samples, for a writer outside this process.
- Bytes are hashed as they are written (no second read), and each finished shard is appended to a
  journal, which is what lets an interrupted build resume after its last complete shard.
- Tar headers carry a fixed mtime, user and mode, so the same samples always give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from datamix.paths import Atomic

# Reproducible tars: no wall-clock time in the headers. An int, not 0.0: tarfile writes a float mtime
# as an extra 1 KiB PAX header per member, which nearly tripled the size of small-image shards.
FIXED_MTIME = 0
OWNER = "datamix"  # user and group names in the headers
END_OF_ARCHIVE = tarfile.NUL * (2 * tarfile.BLOCKSIZE)


def _template() -> bytes:
    info = tarfile.TarInfo("")
    info.size, info.mtime, info.mode = 0, FIXED_MTIME, 0o444
    info.uname = info.gname = OWNER
    return info.tobuf(tarfile.DEFAULT_FORMAT, tarfile.ENCODING, "surrogateescape")


# The header of every member differs only in its name, size and checksum: filled into this template, which
# is what TarInfo.tobuf builds field by field (45 us a member, the largest part of packing a sample).
TEMPLATE = _template()
NAME, SIZE, CHECKSUM = slice(0, 100), slice(124, 136), slice(148, 156)


def _header(name: str, size: int) -> bytes:
    encoded = name.encode("ascii", "surrogateescape") if name.isascii() else None
    if encoded is None or len(encoded) > 100 or size >= 8 ** 11:  # what needs PAX records: tarfile does it
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, FIXED_MTIME, 0o444
        info.uname = info.gname = OWNER
        return info.tobuf(tarfile.DEFAULT_FORMAT, tarfile.ENCODING, "surrogateescape")
    header = bytearray(TEMPLATE)
    header[: len(encoded)] = encoded
    header[SIZE] = b"%011o\0" % size
    header[CHECKSUM] = b" " * 8
    header[148:155] = b"%06o\0" % sum(header)  # as tarfile: six octal digits, NUL, the eighth byte a space
    return bytes(header)


def pack_sample(key: str, members: dict[str, bytes]) -> bytes:
    """The tar members `<key>.<suffix>` of one sample, in TarWriter's order (suffixes sorted) and bytes:
    what tarfile.open(mode="w|") writes, with its default format (PAX), encoding and error handler."""
    parts = []
    for suffix in sorted(members):
        data = members[suffix]
        parts.append(_header(f"{key}.{suffix}", len(data)))
        parts.append(data)
        parts.append(tarfile.NUL * (-len(data) % tarfile.BLOCKSIZE))
    return b"".join(parts)


def shard_pattern(mix_name: str) -> re.Pattern:
    """Exactly the file names a ShardWriter of this mix writes (finished, `.tmp`, or `.<attempt>.tmp` from
    `write_shard`): what may be deleted.

    `<name>-backup.tar` or `<name>-v1.tar.gz` beside a mix are the user's, never ours to remove.
    """
    return re.compile(re.escape(mix_name) + r"-\d{6,}\.tar((\.[0-9a-f]+)?\.tmp)?")


def written_shards(folder: Path, mix_name: str) -> list[Path]:
    pattern = shard_pattern(mix_name)
    return sorted(p for p in Path(folder).iterdir() if pattern.fullmatch(p.name) and p.is_file())


@dataclass(frozen=True)
class ShardRecord:
    name: str
    first: int  # position of its first sample in the mix
    samples: int
    bytes: int
    sha256: str


class _HashingFile:
    """A write-only file that hashes and counts what passes through, under a temporary name until committed."""

    def __init__(self, path: Path, attempt: str = ""):
        self.atomic = Atomic(path, attempt)
        self._file = open(self.atomic.tmp, "wb")
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self._file.write(data)

    def close(self) -> None:
        self._file.close()


class ShardPlan:
    """The cut rule, the one owner of where shards begin: a new shard once the open one holds `max_samples`
    samples or `max_bytes` bytes or more. Fed the packed size of each sample in mix order."""

    def __init__(self, max_samples: int, max_bytes: int, *, start_index: int = 0, start_position: int = 0):
        self.max_samples, self.max_bytes = max_samples, max_bytes
        self.index = start_index  # of the open shard, or of the next one while none is open
        self.position = start_position  # of the next sample
        self.first = start_position  # of the open shard's first sample
        self.count = self.size = 0  # samples and bytes in the open shard (0: none open)

    def place(self, size: int) -> bool:
        """Count one sample of `size` packed bytes; True when it opens a new shard (numbered `index`)."""
        if self.count and (self.count >= self.max_samples or self.size >= self.max_bytes):
            self.index += 1
            self.count = self.size = 0
        opens = not self.count
        if opens:
            self.first = self.position
        self.count += 1
        self.size += size
        self.position += 1
        return opens


def _seal(file: _HashingFile, name: str, first: int, samples: int) -> ShardRecord:
    """End the archive as tarfile does (two zero blocks, then zeros to a whole 10 KiB record), rename it into place."""
    file.write(END_OF_ARCHIVE)
    file.write(tarfile.NUL * (-file.size % tarfile.RECORDSIZE))
    file.close()
    file.atomic.commit()
    return ShardRecord(name, first, samples, file.size, file.sha.hexdigest())


def write_shard(out_dir: Path, name: str, first: int, packed: Iterable[bytes], attempt: str = "") -> ShardRecord:
    """A whole shard file from its packed samples, as ShardWriter writes it. `attempt` (hex) names the temporary
    file, so two attempts at one shard (a retry while a lost one still runs) never write into the same file."""
    file = _HashingFile(Path(out_dir) / name, attempt)
    samples = 0
    try:
        for data in packed:
            file.write(data)
            samples += 1
        return _seal(file, name, first, samples)
    except BaseException:  # a failed write or rename leaves no temporary file behind
        file.close()
        file.atomic.discard()
        raise


class ShardWriter:
    """Writes packed samples (`pack_sample`) into rolling shards cut by a `ShardPlan`, journaling each finished
    one; or journals shards written elsewhere to the same plan (`add_record`)."""

    def __init__(self, out_dir: Path, name: str, *, max_samples: int, max_bytes: int,
                 journal: Path | None = None, start_index: int = 0, start_position: int = 0):
        self.out_dir, self.name = Path(out_dir), name
        self.plan = ShardPlan(max_samples, max_bytes, start_index=start_index, start_position=start_position)
        self.journal = journal
        self.records: list[ShardRecord] = []
        self._file: _HashingFile | None = None  # while a shard is open
        self._count = self._first = 0

    @property
    def index(self) -> int:
        """The number of the shard the last sample went into (or the next one)."""
        return self.plan.index

    @property
    def position(self) -> int:
        return self.plan.position

    def shard_name(self, index: int) -> str:
        return f"{self.name}-{index:06d}.tar"

    def write(self, packed: bytes) -> None:
        if self.plan.place(len(packed)):
            self._finish()
            self._file = _HashingFile(self.out_dir / self.shard_name(self.plan.index))
            self._count, self._first = 0, self.plan.first
        self._file.write(packed)
        self._count += 1

    def _finish(self) -> None:
        if self._file is not None:
            self.add_record(_seal(self._file, self._file.atomic.path.name, self._first, self._count))
            self._file = None

    def add_record(self, record: ShardRecord) -> None:
        """A finished shard, in plan order: kept for the manifest and appended to the journal."""
        self.records.append(record)
        if self.journal is not None:
            with open(self.journal, "a", encoding="utf-8") as f:
                f.write(json.dumps(asdict(record)) + "\n")

    def close(self) -> list[ShardRecord]:
        self._finish()
        return self.records

    def abort(self) -> None:
        """Drop the shard being written (its `.tmp` file); the finished ones stay, as a kill would leave them."""
        if self._file is not None:
            self._file.close()
            self._file.atomic.discard()
            self._file = None


class HashingReader:
    """A read-only stream that hashes and counts what a reader (tarfile) takes through it."""

    def __init__(self, file):
        self._file, self.sha, self.size = file, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self._file.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):  # tar end padding: tarfile stops reading before it
            pass


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            sha.update(block)
    return sha.hexdigest()


def completed_shards(out_dir: Path, journal: Path) -> list[ShardRecord]:
    """The journal's shards that are still on disk with their recorded size and hash, in order.

    Stops at the first one that is missing or differs: everything after it is rewritten.
    """
    if not journal.exists():
        return []
    good = []
    for line in journal.read_text(encoding="utf-8").splitlines():
        try:
            record = ShardRecord(**json.loads(line))
        except (ValueError, TypeError):
            break  # a torn last line from a kill mid-write
        path = out_dir / record.name
        if not path.is_file() or path.stat().st_size != record.bytes or sha256_file(path) != record.sha256:
            break
        good.append(record)
    return good
