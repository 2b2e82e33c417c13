"""Step 2 of a build: per source, the first k samples in seeded rank order whose images verify.

Images are checked in rank order, in batches, until the target is met, so a broken image is replaced
by the next ranked sample: the count stays exact and the subsets stay nested (the usable samples of a
source do not depend on the ratio). Only per-row codes are kept (numpy arrays), never the images.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from datamix.builder.workers import Mapper
from datamix.images import VerifiedImage, verify_image
from datamix.selection import Target, rank_order

# Per-row image codes kept between the passes (int8): what the shard writer must do with the row's images.
UNCHECKED, TEXT_ONLY, COPY, REVERIFY = -1, 0, 1, 2  # REVERIFY: re-encoded or several images: verify again
EXTENSIONS = ("jpg", "png", "webp")
BATCH = 512


@dataclass
class Picked:
    name: str
    available: int
    target: Target
    rows: np.ndarray  # distinct selected rows, rank order
    codes: np.ndarray  # int8 per row of the source (see above), ext index in `exts`
    exts: np.ndarray  # int8 per row: index into EXTENSIONS for COPY rows
    digests: np.ndarray  # (rows, 16) uint8: blake2b of the verified files, checked again when written
    orientations: np.ndarray  # int8 per row: EXIF orientation of a COPY row's image (0: none)
    rejects: list[dict] = field(default_factory=list)
    examined: int = 0

    @property
    def requested(self) -> int:
        return self.target.total(self.available)

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """(row, copy) of every sample this source writes: whole copies first, then the ranked extra."""
        copies = self.target.copies
        extra = self.rows[: self.target.extra]
        rows = np.concatenate([np.tile(self.rows, copies), extra]).astype(np.int64)
        copy = np.concatenate([np.repeat(np.arange(copies), len(self.rows)), np.full(len(extra), copies)])
        return rows, copy.astype(np.int64)


def row_digest(verdicts: list[VerifiedImage]) -> bytes:
    """One digest for all the files of a row (a single image: that file's own digest)."""
    if len(verdicts) == 1:
        return verdicts[0].original_digest
    return hashlib.blake2b(b"".join(v.original_digest for v in verdicts), digest_size=16).digest()


def check_row(args: tuple[str | None, list[str], int]) -> tuple[int, int, bytes, int] | str:
    """Worker: (code, ext index, digest, EXIF orientation) for a row's images, or the first reason one is unusable."""
    root, images, max_pixels = args
    if not images:
        return TEXT_ONLY, 0, bytes(16), 0
    if root is None:
        return "no_image_root: the source has images but the recipe gives no image_root"
    verdicts = [verify_image(root, rel, max_pixels) for rel in images]
    for rel, verdict in zip(images, verdicts):
        if isinstance(verdict, str):
            return verdict
    if len(verdicts) == 1 and verdicts[0].reencoded is None:
        return COPY, EXTENSIONS.index(verdicts[0].ext), row_digest(verdicts), verdicts[0].exif_orientation or 0
    return REVERIFY, 0, row_digest(verdicts), 0


def pick_source(name: str, parquet: Path, target: Target, *, seed: int, image_root: Path | None,
                max_pixels: int, pool: Mapper, removed: np.ndarray | None = None) -> Picked:
    """`removed`: rows excluded before ranking (decontamination, dedupe); the others keep their rank order."""
    table = pq.read_table(parquet, columns=["id", "images"])
    ids = table.column("id").to_pylist()
    order = rank_order(seed, name, ids)
    if removed is not None:
        order = order[~removed[order]]
    n = len(ids)
    need = target.distinct(len(order))
    codes = np.full(n, UNCHECKED, dtype=np.int8)
    exts = np.zeros(n, dtype=np.int8)
    picked = Picked(name, len(order), target, np.empty(0, dtype=np.int64), codes, exts,
                    digests=np.zeros((n, 16), dtype=np.uint8), orientations=np.zeros(n, dtype=np.int8))
    chosen: list[np.ndarray] = []
    got, cursor = 0, 0
    images = table.column("images")
    root = None if image_root is None else str(image_root)
    while got < need and cursor < len(order):
        batch = order[cursor: cursor + max(need - got, BATCH)]
        cursor += len(batch)
        jobs = ((root, images[int(r)].as_py(), max_pixels) for r in batch)
        good = []
        for row, verdict in zip(batch, pool.imap(check_row, jobs)):
            if got == need:
                break  # the rest of the batch was checked ahead of need; it is neither used nor reported
            picked.examined += 1
            if isinstance(verdict, str):
                mixed_id = f"{name}/{ids[row].split('/', 1)[-1]}"  # the id the sample would have had in the mix
                picked.rejects.append({"source": name, "id": mixed_id, "stage": "images", "reason": verdict})
            else:
                codes[row], exts[row], digest, orientation = verdict
                picked.digests[row] = np.frombuffer(digest, dtype=np.uint8)
                picked.orientations[row] = orientation if 0 < orientation < 128 else 0
                good.append(row)
                got += 1
        chosen.append(np.asarray(good, dtype=np.int64))
    picked.rows = np.concatenate(chosen) if chosen else np.empty(0, dtype=np.int64)
    return picked
