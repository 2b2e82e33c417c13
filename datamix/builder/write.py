"""Steps 3-4 of a build: the seeded global shuffle, then the shards, with memory that stays flat.

The shuffle gives every selected sample its position in the mix. Samples are then routed, source by
source, into bucket files of consecutive positions (an external shuffle: nothing holds the whole mix),
and each bucket is sorted and written in order, images read (or re-encoded) in parallel, in order.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from datamix.builder.pick import COPY, EXTENSIONS, REVERIFY, Picked, row_digest
from datamix.builder.workers import Mapper
from datamix.errors import BuildError
from datamix.images import file_digest, read_regular_file, resolve_image, verify_image
from datamix.prompts import PromptPolicy, apply_format_prompt
from datamix.mixdir import MixWriter
from datamix.mixdir.writer import ReadySample, prepare_sample
from datamix.schema import Sample
from datamix.table import table_to_samples

BUCKET = 8192  # positions per bucket file


def shuffle_positions(seed: int, total: int) -> np.ndarray:
    """positions[i] = place in the mix of the i-th selected sample (sources in recipe order, rank order)."""
    return np.random.default_rng(seed).permutation(total)


def mix_id(sample_id: str, converter_prefix: str, source_name: str, copy: int) -> str:
    """`<source name>/<original id>`, and `@k` for the k-th repeated copy, so ids stay unique in the mix."""
    rest = sample_id.split("/", 1)[1] if sample_id.startswith(converter_prefix + "/") else sample_id
    return f"{source_name}/{rest}" + (f"@{copy}" if copy else "")


def route_to_buckets(picked: Picked, parquet: Path, positions: np.ndarray, policy: PromptPolicy,
                     buckets: dict[int, object], bucket_dir: Path) -> None:
    """Write this source's selected samples (with their copies) as JSON lines into position buckets."""
    rows, copies = picked.items()
    order = np.argsort(rows, kind="stable")
    rows, copies, positions = rows[order], copies[order], positions[order]
    file = pq.ParquetFile(parquet)
    offset = 0
    for batch in file.iter_batches(batch_size=4096):
        lo, hi = np.searchsorted(rows, [offset, offset + batch.num_rows])
        if hi > lo:
            wanted = sorted(set((rows[lo:hi] - offset).tolist()))
            samples = dict(zip(wanted, table_to_samples(pa.Table.from_batches([batch.take(wanted)]))))
            for row, copy, position in zip(rows[lo:hi], copies[lo:hi], positions[lo:hi]):
                sample = samples[int(row) - offset]
                line = _bucket_line(sample, picked, int(row), int(copy), int(position), policy)
                _bucket_file(buckets, bucket_dir, int(position) // BUCKET).write(line)
        offset += batch.num_rows


def _bucket_file(buckets: dict[int, object], folder: Path, index: int):
    if index not in buckets:
        buckets[index] = open(folder / f"{index:06d}.jsonl", "w", encoding="utf-8")
    return buckets[index]


def _bucket_line(sample: Sample, picked: Picked, row: int, copy: int, position: int,
                 policy: PromptPolicy) -> str:
    converter = sample.source
    sample = Sample.from_dict(sample.to_dict())  # copies of one row must not share mutable turns
    apply_format_prompt(sample, policy)  # idempotent: already applied when the source was converted
    sample.meta["converter"] = converter
    if copy:
        sample.meta["repeat_copy"] = copy
    row_dict = sample.to_dict() | {"id": mix_id(sample.id, converter, picked.name, copy), "source": picked.name}
    code, ext = int(picked.codes[row]), EXTENSIONS[int(picked.exts[row])]
    # "p" first: `ordered_lines` reads it from the start of the line
    entry = {"p": position, "code": code, "ext": ext, "digest": picked.digests[row].tobytes().hex(),
             "exif": int(picked.orientations[row]) or None, "row": row_dict}
    return json.dumps(entry, ensure_ascii=False) + "\n"


Member = tuple[str, bytes, str | None, int | None]  # (extension, bytes, re-encode note, EXIF orientation)


def ready_sample(args: tuple[str | None, dict, int, int]) -> ReadySample | str:
    """Worker: one sample ready to append (images read and re-checked, JSON encoded, images hashed, tar
    members packed), or why its images are no longer the ones verified. The main process only appends."""
    root, entry, max_pixels, width = args
    images = load_member_images(root, entry, max_pixels)
    if isinstance(images, str):
        return images
    return prepare_sample(f"{entry['p']:0{width}d}", *_sample(entry, images))


def load_member_images(root: str | None, entry: dict, max_pixels: int) -> list[Member] | str:
    """(extension, bytes, re-encode note, EXIF orientation) per image of a sample, exactly the files verified in the
    pick step: their digest is checked again here, so a file changed in between never reaches a shard."""
    images = entry["row"]["images"]
    if entry["code"] == COPY:
        path = resolve_image(root, images[0])
        data = None if isinstance(path, str) else read_regular_file(path)
        data = data if isinstance(data, bytes) else b""
        if file_digest(data) != bytes.fromhex(entry["digest"]):
            return f"image changed during the build: {images[0]} differs from the file verified earlier"
        return [(entry["ext"], data, None, entry.get("exif"))]
    if entry["code"] == REVERIFY:
        verdicts = []
        for rel in images:
            verdict = verify_image(root, rel, max_pixels)
            if isinstance(verdict, str):
                return f"image changed during the build: {verdict}"
            verdicts.append(verdict)
        if row_digest(verdicts) != bytes.fromhex(entry["digest"]):
            return f"image changed during the build: {', '.join(images)} differs from the file(s) verified earlier"
        return [(v.ext, v.data, v.reencoded, v.exif_orientation) for v in verdicts]
    return []


def write_shards(bucket_dir: Path, writer: MixWriter, roots: dict[str, str | None], max_pixels: int,
                 pool: Mapper, skip_before: int) -> None:
    for bucket in buckets(bucket_dir):
        entries = [json.loads(line) for line in ordered_lines(bucket, skip_before)]
        jobs = ((roots[e["row"]["source"]], e, max_pixels, writer.width) for e in entries)
        for entry, sample in zip(entries, pool.imap(ready_sample, jobs, chunksize=16)):
            if isinstance(sample, str):
                raise input_changed(entry, sample)
            writer.append(sample)


def buckets(bucket_dir: Path) -> list[Path]:
    """The bucket files in position order (bucket k holds positions [k * BUCKET, (k + 1) * BUCKET))."""
    return sorted(bucket_dir.glob("*.jsonl"))


def ordered_lines(bucket: Path, skip_before: int) -> list[str]:
    """A bucket's lines from position `skip_before` on, in position order, not decoded: `_bucket_line` writes the
    position first (`{"p": 123, ...`), so it is read without parsing the row."""
    lines = bucket.read_text(encoding="utf-8").splitlines()
    keyed = sorted((int(line[6:line.index(",", 6)]), line) for line in lines)
    return [line for position, line in keyed if position >= skip_before]


def input_changed(entry: dict, reason: str) -> BuildError:
    """Verified minutes ago, unusable now: the input is being modified."""
    return BuildError(f"{entry['row']['id']}: {reason}; rerun the build once the inputs are stable")


def _sample(entry: dict, images: list[Member]) -> tuple[dict, dict[str, bytes], list[str | None]]:
    """(row, image members by suffix, re-encode notes) of one sample, as the mix writer takes them."""
    row = entry["row"]
    suffixes = [ext if len(images) == 1 else f"{i}.{ext}" for i, (ext, _, _, _) in enumerate(images)]
    notes = [note for _, _, note, _ in images]
    if any(notes):
        row["meta"]["reencoded"] = notes
    orientations = [orientation for _, _, _, orientation in images]
    if any(o not in (None, 1) for o in orientations):  # recorded, never applied: boxes use the raw pixel frame
        row["meta"]["exif_orientation"] = orientations
    row["image_members"] = suffixes
    return row, {suffix: data for suffix, (_, data, _, _) in zip(suffixes, images)}, notes
