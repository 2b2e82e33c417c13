"""The tiers: which training samples show an evaluation image, and which samples repeat an earlier one.

Decontamination (`eval_hits`) runs the enabled tiers in order and keeps, per sample, the first that catches it:

1. `ids`    an image id key of the sample (keys.py, VG/COCO links added) names an evaluation image;
2. `bytes`  a sample image has the sha256 of an evaluation image file;
3. `pixels` ... the pixel digest of one (a lossless re-encode, stripped metadata);
4. `phash`  ... a perceptual hash within `phash` bits of one (resized, recompressed copies).

A sample is removed whole if any of its images is caught. Ties go to the first image of the sample, then the
smallest distance, then the first evaluation set and item (recipe order, file order): the same inputs name the
same match. Only rows a tier still has to look at are fingerprinted, so the ids tier saves the decode.

Dedupe (`duplicate_hits`) walks every sample in one order (recipe source order, then the seeded rank within a
source) and removes a sample that repeats one already kept: an image that is the same (sha256 or pixels) or
within `phash` bits of a kept sample's image under another path or source (several conversations about one
image of one source are that source's design, not duplicates), or the same conversation (roles and text) about
the same image (by id key, else path) or about no image. The first by rank stays, so rungs stay nested.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from datamix.decontam.evalsets import EvalSet
from datamix.decontam.keys import Links
from datamix.decontam.spec import Tiers
from datamix.fingerprints import Fingerprint, PhashIndex

@dataclass(frozen=True)
class Hit:
    """Why one sample goes: the tier, what it matched (an evaluation item, or the sample kept in its place)."""

    tier: str
    image: int  # which image of the sample
    distance: int  # Hamming distance of the pHashes (0 for the exact tiers)
    ref: int  # evaluation: flat item index (EvalIndex.refs); dedupe: index of the kept sample in the walk


class EvalIndex:
    """Every evaluation image by id key, sha256, pixel digest and pHash; refs are in set then item order."""

    def __init__(self, sets: list[EvalSet], links: Links, prints: list[list[Fingerprint | str | None]]):
        self.sets = sets
        self.refs = [(s, i) for s, es in enumerate(sets) for i in range(len(es.items))]
        self.by_key: dict[str, int] = {}
        self.by_sha: dict[bytes, int] = {}
        self.by_pixels: dict[bytes, int] = {}
        phash_refs, phashes = [], []
        flat_prints = [p for per_set in prints for p in per_set]
        for flat, (s, i) in enumerate(self.refs):
            for key in links.expand(sets[s].items[i].keys):
                self.by_key.setdefault(key, flat)
            fp = flat_prints[flat] if flat < len(flat_prints) else None
            if isinstance(fp, Fingerprint):
                self.by_sha.setdefault(fp.sha256, flat)
                self.by_pixels.setdefault(fp.pixels, flat)
                phash_refs.append(flat)
                phashes.append(fp.phash)
        self.phash_refs = np.asarray(phash_refs, dtype=np.int64)
        self.phashes = np.asarray(phashes, dtype=np.uint64)

    def item(self, flat: int):
        s, i = self.refs[flat]
        return self.sets[s], self.sets[s].items[i]


def eval_hits_by_ids(keys: Sequence[Sequence[tuple[str, ...]]], index: EvalIndex) -> dict[int, Hit]:
    """Rows whose image keys (per image, links already added) name an evaluation image."""
    hits = {}
    for row, per_image in enumerate(keys):
        for k, image_keys in enumerate(per_image):
            found = [index.by_key[key] for key in image_keys if key in index.by_key]
            if found:
                hits[row] = Hit("ids", k, 0, min(found))
                break
    return hits


def eval_hits_by_fingerprints(prints: dict[int, list[Fingerprint | str]], index: EvalIndex,
                              tiers: Tiers) -> dict[int, Hit]:
    """Rows (given with their images' fingerprints; a str is an unusable image) caught by the image tiers."""
    hits: dict[int, Hit] = {}
    for tier, table, attr in (("bytes", index.by_sha, "sha256"), ("pixels", index.by_pixels, "pixels")):
        if not getattr(tiers, tier):
            continue
        for row, fps in prints.items():
            if row in hits:
                continue
            for k, fp in enumerate(fps):
                if isinstance(fp, Fingerprint) and getattr(fp, attr) in table:
                    hits[row] = Hit(tier, k, 0, table[getattr(fp, attr)])
                    break
    if tiers.phash is not None and len(index.phashes):
        rows, images, hashes = _flat_hashes({r: f for r, f in prints.items() if r not in hits})
        q, ref, dist = PhashIndex(index.phashes, tiers.phash).pairs(hashes)
        first = np.unique(q, return_index=True)[1]  # pairs are sorted by (query, distance, ref)
        best: dict[int, tuple[int, int, int]] = {}
        for at in first:
            row, k = int(rows[q[at]]), int(images[q[at]])
            candidate = (int(dist[at]), k, int(index.phash_refs[ref[at]]))
            if row not in best or candidate < best[row]:
                best[row] = candidate
        for row, (distance, k, flat) in best.items():
            hits[row] = Hit("phash", k, distance, flat)
    return hits


def _flat_hashes(prints: dict[int, list[Fingerprint | str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, image index, pHash) of every usable image, rows ascending."""
    triples = [(row, k, fp.phash) for row in sorted(prints) for k, fp in enumerate(prints[row])
               if isinstance(fp, Fingerprint)]
    if not triples:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.uint64)
    rows, images, hashes = zip(*triples)
    return np.asarray(rows, np.int64), np.asarray(images, np.int64), np.asarray(hashes, np.uint64)


@dataclass(frozen=True)
class Walked:
    """One sample in the dedupe walk: what identifies its images and its conversation."""

    owner: tuple[str, ...]  # per image: "<source>\x1f<path>", the place it is stored
    prints: list[Fingerprint | str] | None  # per image (None: the image tier is off)
    conversation: tuple | None  # (conversation hash, image identities) when conversations are compared


def duplicate_hits(walk: list[Walked], images: str | None, phash: int | None) -> dict[int, Hit]:
    """Samples of `walk` (in its order) that repeat a kept one; `images`: None, "bytes", "pixels" or "phash"."""
    hits: dict[int, Hit] = {}
    near = _Neighbours(walk, phash) if images == "phash" else None
    kept_images: dict[bytes, tuple[int, str]] = {}  # identity -> (walk index, owner) of the first kept
    kept_conversations: dict[tuple, int] = {}
    for n, sample in enumerate(walk):
        hit = None
        if near is not None:
            hit = near.duplicate(n, sample)
        elif images is not None and sample.prints:
            hit = _exact_duplicate(sample, images, kept_images)
        if hit is None and sample.conversation is not None and sample.conversation in kept_conversations:
            hit = Hit("conversation", 0, 0, kept_conversations[sample.conversation])
        if hit is not None:
            hits[n] = hit
            continue
        if sample.conversation is not None:
            kept_conversations.setdefault(sample.conversation, n)
        if near is not None:
            near.keep(n)
        elif images is not None and sample.prints:
            for k, fp in enumerate(sample.prints):
                if isinstance(fp, Fingerprint):
                    kept_images.setdefault(_identity(fp, images), (n, sample.owner[k]))
    return hits


def _identity(fp: Fingerprint, images: str) -> bytes:
    return fp.sha256 if images == "bytes" else fp.pixels


def _exact_duplicate(sample: Walked, images: str, kept: dict[bytes, tuple[int, str]]) -> Hit | None:
    for k, fp in enumerate(sample.prints):
        if isinstance(fp, Fingerprint):
            first = kept.get(_identity(fp, images))
            if first is not None and first[1] != sample.owner[k]:
                return Hit(images, k, 0, first[0])
    return None


class _Neighbours:
    """Every usable image of the walk (flat, in walk order) and its neighbours within `distance` bits."""

    def __init__(self, walk: list[Walked], distance: int | None):
        walk_index, image_index, self.owners, hashes = [], [], [], []
        for n, sample in enumerate(walk):
            for k, fp in enumerate(sample.prints or []):
                if isinstance(fp, Fingerprint):
                    walk_index.append(n)
                    image_index.append(k)
                    self.owners.append(sample.owner[k])
                    hashes.append(fp.phash)
        self.walk_index = np.asarray(walk_index, np.int64)
        self.image_index = np.asarray(image_index, np.int64)
        hashes = np.asarray(hashes, dtype=np.uint64)
        self.query, self.other, self.distance = PhashIndex(hashes, int(distance or 0)).pairs(hashes)
        flat = np.arange(len(hashes))
        self.starts = np.searchsorted(self.query, flat, side="left")
        self.ends = np.searchsorted(self.query, flat, side="right")
        self.sample_starts = np.searchsorted(self.walk_index, np.arange(len(walk) + 1), side="left")
        self.kept = np.zeros(len(hashes), bool)

    def duplicate(self, n: int, sample: Walked) -> Hit | None:
        best = None
        for flat in range(self.sample_starts[n], self.sample_starts[n + 1]):
            k = int(self.image_index[flat])
            for at in range(self.starts[flat], self.ends[flat]):  # sorted by (distance, other)
                other = self.other[at]
                if self.kept[other] and self.owners[other] != sample.owner[k]:
                    candidate = (int(self.distance[at]), k, int(self.walk_index[other]))
                    best = candidate if best is None or candidate < best else best
                    break
        return None if best is None else Hit("phash", best[1], best[0], best[2])

    def keep(self, n: int) -> None:
        self.kept[self.sample_starts[n]:self.sample_starts[n + 1]] = True

