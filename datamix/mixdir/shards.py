"""Rolling WebDataset shard writer: `<name>-000000.tar`, ... through `webdataset.TarWriter`.

- A shard is written under `<file>.tmp` and renamed when complete, so no partial shard is ever visible.
- Bytes are hashed as they are written (no second read), and each finished shard is appended to a
  journal, which is what lets an interrupted build resume after its last complete shard.
- Tar headers carry a fixed mtime, user and mode, so the same samples always give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from datamix.paths import Atomic

# Reproducible tars: no wall-clock time in the headers. An int, not 0.0: tarfile writes a float mtime
# as an extra 1 KiB PAX header per member, which nearly tripled the size of small-image shards.
FIXED_MTIME = 0


def shard_pattern(mix_name: str) -> re.Pattern:
    """Exactly the file names a ShardWriter of this mix writes (finished or `.tmp`): what may be deleted.

    `<name>-backup.tar` or `<name>-v1.tar.gz` beside a mix are the user's, never ours to remove.
    """
    return re.compile(re.escape(mix_name) + r"-\d{6,}\.tar(\.tmp)?")


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

    def __init__(self, path: Path):
        self.atomic = Atomic(path)
        self._file = open(self.atomic.tmp, "wb")
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self._file.write(data)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class ShardWriter:
    """Writes samples (dicts of member suffix -> bytes, plus `__key__`) into rolling shards."""

    def __init__(self, out_dir: Path, name: str, *, max_samples: int, max_bytes: int,
                 journal: Path | None = None, start_index: int = 0, start_position: int = 0):
        self.out_dir, self.name = Path(out_dir), name
        self.max_samples, self.max_bytes = max_samples, max_bytes
        self.journal = journal
        self.index, self.position = start_index, start_position
        self.records: list[ShardRecord] = []
        self._tar = None  # webdataset.TarWriter while a shard is open
        self._file: _HashingFile | None = None
        self._count = self._first = 0

    def shard_name(self, index: int) -> str:
        return f"{self.name}-{index:06d}.tar"

    def write(self, sample: dict) -> None:
        if self._tar is not None and (self._count >= self.max_samples or self._file.size >= self.max_bytes):
            self._finish()
        if self._tar is None:
            self._open()
        self._tar.write(sample)
        self._count += 1
        self.position += 1

    def _open(self) -> None:
        # Imported here: `import webdataset` pulls in torch (2 s, 200 MB), which the build's worker
        # processes, importing this module for its helpers, never need.
        from webdataset import TarWriter

        self._file = _HashingFile(self.out_dir / self.shard_name(self.index))
        self._tar = TarWriter(self._file, encoder=False, mtime=FIXED_MTIME, user="datamix", group="datamix")
        self._count, self._first = 0, self.position

    def _finish(self) -> None:
        self._tar.close()
        self._file.close()
        self._file.atomic.commit()
        record = ShardRecord(self.shard_name(self.index), self._first, self._count, self._file.size, self._file.sha.hexdigest())
        self.records.append(record)
        if self.journal is not None:
            with open(self.journal, "a", encoding="utf-8") as f:
                f.write(json.dumps(asdict(record)) + "\n")
        self._tar = self._file = None
        self.index += 1

    def close(self) -> list[ShardRecord]:
        if self._tar is not None:
            self._finish()
        return self.records

    def abort(self) -> None:
        """Drop the shard being written (its `.tmp` file); the finished ones stay, as a kill would leave them."""
        if self._tar is not None:
            self._tar.close()
            self._file.close()
            self._file.atomic.discard()
            self._tar = self._file = None


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
