"""`datamix stats MIX --duplicates N`: the images of a mix that are really the same picture.

Three kinds, from cheapest to dearest, each reported per source and across sources:

- same file, other path: one content sha256 stored under several image paths (from index.parquet alone);
- same pixels, other file: a lossless re-encode or stripped metadata (decoded from the shards);
- near duplicates: distinct pixels whose perceptual hashes lie within N bits (resized, recompressed copies).

Every distinct image (by sha256) is decoded once from the shards, in mix order, fingerprinted by
datamix.fingerprints (what decontamination uses), and searched against the others with `PhashIndex`.
Example pairs are kept at each distance up to N, so the HTML report shows what a threshold would catch.
Stats only report: a recipe's `dedupe:` section is what drops duplicates from a build.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from datamix.builder.workers import mapper
from datamix.fingerprints import PhashIndex, fingerprint_bytes_job
from datamix.images import DEFAULT_MAX_PIXELS
from datamix.mixdir import load_manifest
from datamix.mixdir.reader import iter_samples, read_index
from datamix.stats.report import thumbnail_uri

EXAMPLES_PER_DISTANCE = 3


@dataclass(frozen=True)
class ImageUse:
    """Where a distinct image is first used in the mix."""

    sha256: str
    key: str
    source: str
    path: str
    member: int  # which image of the sample (its place in `images` / `image_members`)

    @property
    def position(self) -> int:
        return int(self.key)


def same_file_other_path(index: pl.DataFrame) -> dict:
    """Content sha256 stored under several paths: per source and in total (index columns source, images,
    image_sha256)."""
    uses = (index.select("source", pl.col("images").alias("path"), pl.col("image_sha256").alias("sha"))
            .explode("path", "sha").drop_nulls("sha").unique())
    paths = uses.group_by("sha").agg(pl.col("path").n_unique().alias("paths"),
                                     pl.col("source").n_unique().alias("sources"))
    repeated = paths.filter(pl.col("paths") > 1)
    per_source = (uses.join(repeated, on="sha").group_by("source").agg(pl.col("sha").n_unique().alias("images")))
    return {"images": repeated.height,
            "extra_paths": int((repeated["paths"] - 1).sum()) if repeated.height else 0,
            "across_sources": int((repeated["sources"] > 1).sum()) if repeated.height else 0,
            "per_source": {s: int(k) for s, k in sorted(per_source.iter_rows())}}


def duplicate_images(mix_dir: str | Path, max_distance: int, *, workers: int = 1,
                     max_pixels: int = DEFAULT_MAX_PIXELS, verify: bool = True) -> dict:
    """Every figure above for a mix folder; `examples` holds pairs with their thumbnails (data URIs)."""
    mix_dir = Path(mix_dir)
    manifest = load_manifest(mix_dir)
    index = pl.from_arrow(read_index(mix_dir, ["key", "source", "images", "image_sha256"], manifest=manifest))
    uses, fingerprints, unreadable = _fingerprint_distinct(mix_dir, manifest, first_uses(index), workers,
                                                           max_pixels, verify)
    result = {"max_distance": max_distance, "distinct_images": len(uses), "unreadable": unreadable,
              "same_file_other_path": same_file_other_path(index)}
    result |= _same_pixels(uses, fingerprints)
    pairs = _near_pairs(fingerprints, max_distance)
    result["near"] = _near_figures(uses, pairs)
    result["examples"] = _examples(mix_dir, manifest, uses, pairs, verify, max_pixels)
    return result


def first_uses(index: pl.DataFrame) -> list[ImageUse]:
    """The first use of every distinct image (by the content sha256 the index records), in mix order."""
    uses, seen = [], set()
    for key, source, paths, shas in index.select("key", "source", "images", "image_sha256").iter_rows():
        for member, (path, sha) in enumerate(zip(paths or [], shas or [])):
            if sha not in seen:
                seen.add(sha)
                uses.append(ImageUse(sha, key, source, path, member))
    return uses


def _stored_images(mix_dir: Path, manifest: dict, uses: list[ImageUse], verify: bool):
    """(use, image bytes) of each use, in the order given (mix order): only the samples holding one are read."""
    wanted: dict[int, list[ImageUse]] = {}
    for use in uses:
        wanted.setdefault(use.position, []).append(use)
    for key, row, members in iter_samples(mix_dir, positions=wanted.keys(), manifest=manifest, verify=verify):
        for use in wanted[int(key)]:
            yield use, members[row["image_members"][use.member]]


def _fingerprint_distinct(mix_dir: Path, manifest: dict, uses: list[ImageUse], workers: int, max_pixels: int,
                          verify: bool):
    """(first use, fingerprint) of every distinct image, in mix order; images that no longer decode are counted."""
    jobs = ((data, use.path, max_pixels) for use, data in _stored_images(mix_dir, manifest, uses, verify))
    fingerprints, kept, unreadable = [], [], 0
    with mapper(workers) as pool:
        for i, result in enumerate(pool.imap(fingerprint_bytes_job, jobs, chunksize=16)):
            if isinstance(result, str):
                unreadable += 1
            else:
                fingerprints.append(result)
                kept.append(i)
    return [uses[i] for i in kept], fingerprints, unreadable


def _same_pixels(uses: list[ImageUse], fingerprints: list) -> dict:
    groups: dict[bytes, list[int]] = {}
    for i, fp in enumerate(fingerprints):
        groups.setdefault(fp.pixels, []).append(i)
    repeated = [g for g in groups.values() if len(g) > 1]
    per_source = Counter(uses[i].source for g in repeated for i in g[1:])
    return {"same_pixels_other_file": {"images": sum(len(g) - 1 for g in repeated),
                                       "per_source": dict(sorted(per_source.items()))}}


def _near_pairs(fingerprints: list, max_distance: int) -> list[tuple[int, int, int]]:
    """(a, b, distance), a < b in mix order, of distinct-pixel images within max_distance."""
    if not fingerprints:
        return []
    hashes = np.array([fp.phash for fp in fingerprints], dtype=np.uint64)
    q, r, d = PhashIndex(hashes, max_distance).pairs(hashes)
    return [(a, b, dist) for a, b, dist in zip(q.tolist(), r.tolist(), d.tolist())
            if a < b and fingerprints[a].pixels != fingerprints[b].pixels]


def _near_figures(uses: list[ImageUse], pairs: list[tuple[int, int, int]]) -> dict:
    later = {b for _, b, _ in pairs}  # an image with an earlier near copy: what a keep-first dedupe would drop
    per_source = Counter(uses[b].source for b in later)
    return {"pairs": len(pairs), "images": len(later),
            "across_sources": sum(1 for a, b, _ in pairs if uses[a].source != uses[b].source),
            "by_distance": {str(k): v for k, v in sorted(Counter(d for _, _, d in pairs).items())},
            "per_source": dict(sorted(per_source.items()))}


def _examples(mix_dir: Path, manifest: dict, uses: list[ImageUse], pairs: list[tuple[int, int, int]],
              verify: bool, max_pixels: int) -> list[dict]:
    """A few pairs at each distance (the first in mix order), with small thumbnails of both images."""
    chosen, per_distance = [], Counter()
    for a, b, d in pairs:
        if per_distance[d] < EXAMPLES_PER_DISTANCE:
            per_distance[d] += 1
            chosen.append((a, b, d))
    shown = sorted({i for a, b, _ in chosen for i in (a, b)})
    thumbs = {use.sha256: thumbnail_uri(data, use.path, max_pixels)
              for use, data in _stored_images(mix_dir, manifest, [uses[i] for i in shown], verify)}
    return [{"distance": d, "a": _use_dict(uses[a]), "b": _use_dict(uses[b]),
             "a_thumbnail": thumbs.get(uses[a].sha256), "b_thumbnail": thumbs.get(uses[b].sha256)}
            for a, b, d in sorted(chosen, key=lambda p: (p[2], p[0], p[1]))]


def _use_dict(use: ImageUse) -> dict:
    return {"key": use.key, "source": use.source, "path": use.path, "sha256": use.sha256}
