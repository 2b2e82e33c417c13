"""Which samples leave a mix, and why: the tiers applied to every candidate row of every source.

The same decision serves `datamix build` (rows of the converted sources, before any selection) and
`datamix decontaminate` (rows of a finished mix). Callers say how to fingerprint a row's images and how
to read one (for the report's example pairs); everything else is decided here, in one fixed order:
sources in recipe order, rows in the seeded rank order of their source.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from datamix.decontam.evalsets import EvalSet
from datamix.decontam.keys import Links, image_keys
from datamix.decontam.match import EvalIndex, Hit, Walked, duplicate_hits, eval_hits_by_fingerprints, eval_hits_by_ids
from datamix.decontam.prints import file_thumbnail
from datamix.stats.report import thumbnail_uri
from datamix.decontam.spec import DedupeSpec, ExcludeSpec
from datamix.fingerprints import FINGERPRINT_VERSIONS, Fingerprint

EXAMPLES = 6  # example pairs kept per evaluation set and tier (per tier for dedupe): enough to judge a threshold

Prints = Callable[[int, list[int]], dict[int, list[Fingerprint | str]]]  # (source index, rows) -> per image
ReadImage = Callable[[int, int, int], bytes | str | None]  # (source index, row, image index) -> file bytes


@dataclass
class SourceRows:
    """The candidate rows of one source."""

    name: str  # the recipe's source name
    converter: str | None  # for the image keys (keys.image_keys)
    labels: list[str]  # the id each row has (or would have) in the mix: what the ledger names
    images: list[list[str]]  # image paths per row, relative to the source's image root
    rank: np.ndarray  # rows in seeded rank order
    conversations: np.ndarray | None = None  # uint64 hash of each row's turn list (dedupe of conversations)


@dataclass
class Decision:
    removed: list[np.ndarray]  # per source: bool per row
    rejects: list[list[dict]]  # per source: the ledger entries, in rank order
    record: dict  # counts per source, tier and evaluation set (manifest and stats.json)
    examples: list[dict] = field(default_factory=list)  # pairs for the report, thumbnails embedded


def decide(sources: list[SourceRows], *, exclude: ExcludeSpec | None, dedupe: DedupeSpec | None,
           eval_sets: list[EvalSet], eval_prints: list[list[Fingerprint | str | None]], links: Links,
           prints: Prints, read: ReadImage, max_pixels: int) -> Decision:
    removed = [np.zeros(len(s.labels), bool) for s in sources]
    hits: list[dict[int, tuple[str, Hit]]] = [{} for _ in sources]
    keys = [[[links.expand(image_keys(p, s.converter)) for p in row] for row in s.images] for s in sources]
    index = EvalIndex(eval_sets, links, eval_prints) if exclude is not None else None
    if exclude is not None:
        for n, source in enumerate(sources):
            found = eval_hits_by_ids(keys[n], index) if exclude.tiers.ids else {}
            if exclude.tiers.fingerprints and index.by_sha:
                rest = [int(r) for r in source.rank if int(r) not in found and source.images[int(r)]]
                found |= eval_hits_by_fingerprints(prints(n, rest), index, exclude.tiers)
            for row, hit in found.items():
                hits[n][row] = ("decontaminate", hit)
                removed[n][row] = True
    walk: list[tuple[int, int]] = []
    if dedupe is not None:
        walk = [(n, int(r)) for n, s in enumerate(sources) for r in s.rank if not removed[n][int(r)]]
        for at, hit in duplicate_hits(_walked(sources, walk, keys, dedupe, prints), dedupe.images,
                                      dedupe.phash).items():
            n, row = walk[at]
            hits[n][row] = ("dedupe", hit)
            removed[n][row] = True
    rejects = [[_entry(sources, n, row, *hits[n][row], index, walk) for row in map(int, s.rank) if row in hits[n]]
               for n, s in enumerate(sources)]
    record = _record(sources, rejects, exclude, dedupe, eval_sets, eval_prints, links)
    examples = _examples(sources, hits, index, walk, read, max_pixels)
    return Decision(removed, rejects, record, examples)


def _walked(sources: list[SourceRows], walk: list[tuple[int, int]], keys, dedupe: DedupeSpec,
            prints: Prints) -> list[Walked]:
    fingerprinted: dict[int, dict[int, list]] = {}
    if dedupe.fingerprints:
        for n in range(len(sources)):
            rows = [row for m, row in walk if m == n and sources[n].images[row]]
            fingerprinted[n] = prints(n, rows)
    out = []
    for n, row in walk:
        source = sources[n]
        paths = source.images[row]
        conversation = None
        if dedupe.conversations and source.conversations is not None:
            # the same turns about the same image (by id key where one is known, else where it is stored)
            identities = tuple(k[0] if k else f"{source.name}\x1f{p}" for k, p in zip(keys[n][row], paths))
            conversation = (int(source.conversations[row]), identities)
        out.append(Walked(owner=tuple(f"{source.name}\x1f{p}" for p in paths),
                          prints=fingerprinted.get(n, {}).get(row), conversation=conversation))
    return out


def _entry(sources: list[SourceRows], n: int, row: int, stage: str, hit: Hit, index: EvalIndex | None,
           walk: list[tuple[int, int]]) -> dict:
    source = sources[n]
    image = source.images[row][hit.image] if source.images[row] else None
    entry = {"source": source.name, "id": source.labels[row], "stage": stage, "tier": hit.tier,
             "distance": hit.distance, "image": image}
    if stage == "decontaminate":
        eval_set, item = index.item(hit.ref)
        return entry | {"reason": f"{hit.tier}_match: {eval_set.name} {item.item}", "eval_set": eval_set.name,
                        "eval_item": item.item}
    kept_n, kept_row = walk[hit.ref]
    kept = sources[kept_n].labels[kept_row]
    what = "duplicate_conversation" if hit.tier == "conversation" else "duplicate_image"
    return entry | {"reason": f"{what}: of {kept}", "duplicate_of": kept}


def _record(sources: list[SourceRows], rejects: list[list[dict]], exclude: ExcludeSpec | None,
            dedupe: DedupeSpec | None, eval_sets: list[EvalSet], eval_prints, links: Links) -> dict:
    entries = [e for per_source in rejects for e in per_source]
    record: dict = {"fingerprint_versions": FINGERPRINT_VERSIONS}
    if exclude is not None:
        removed = [e for e in entries if e["stage"] == "decontaminate"]
        record["decontaminate"] = {
            "tiers": exclude.tiers.names(), "phash_max_distance": exclude.tiers.phash, "vg_coco_links": len(links),
            "removed": _by_source_and_tier(sources, removed),
            "eval_sets": {es.name: _eval_set_record(es, prints, [e for e in removed if e["eval_set"] == es.name])
                          for es, prints in zip(eval_sets, eval_prints)},
        }
    if dedupe is not None:
        record["dedupe"] = {"images": dedupe.images, "phash_max_distance": dedupe.phash if dedupe.images == "phash"
                            else None, "conversations": dedupe.conversations,
                            "removed": _by_source_and_tier(sources, [e for e in entries if e["stage"] == "dedupe"])}
    return record


def unmatchable_sets(record: dict | None) -> list[str]:
    """Evaluation sets of a decontamination record that can catch nothing: no image has an id key the ids tier
    could join on, and none was fingerprinted (no image_root, or the image tiers off). A warning, not an error:
    a set may rightly share no image pool with the mix, but usually its kind or image_root is wrong."""
    sets = ((record or {}).get("decontaminate") or {}).get("eval_sets", {})
    return [name for name, s in sets.items() if s["images"] and not s["images_with_id_keys"]
            and not s["images_fingerprinted"]]


def _by_source_and_tier(sources: list[SourceRows], entries: list[dict]) -> dict[str, dict[str, int]]:
    return {s.name: dict(sorted(Counter(e["tier"] for e in entries if e["source"] == s.name).items()))
            for s in sources}


def _eval_set_record(es: EvalSet, prints: list, removed: list[dict]) -> dict:
    from datamix.mixdir.shards import sha256_file

    return {"kind": es.kind, "files": [{"name": f.name, "bytes": f.stat().st_size, "sha256": sha256_file(f)}
                                       for f in es.files],
            "images": len(es.items), "records_without_image": es.without_image,
            "images_with_id_keys": sum(1 for item in es.items if item.keys),
            "images_fingerprinted": sum(isinstance(p, Fingerprint) for p in prints),
            "images_unusable": sum(isinstance(p, str) for p in prints),
            **_set_removals(removed)}


def _set_removals(removed: list[dict]) -> dict:
    """One evaluation set's removals: per source and per tier."""
    return {"removed": dict(sorted(Counter(e["source"] for e in removed).items())),
            "removed_by_tier": dict(sorted(Counter(e["tier"] for e in removed).items()))}


def recount(record: dict, sources: list[SourceRows], entries: list[dict]) -> None:
    """A record's removal counts made again from ledger entries (`decontaminate` adds entries for repeat copies
    after the decision), so the record and the ledger always agree."""
    for stage in ("decontaminate", "dedupe"):
        if record.get(stage) is not None:
            record[stage]["removed"] = _by_source_and_tier(sources, [e for e in entries if e["stage"] == stage])
    for name, figures in ((record.get("decontaminate") or {}).get("eval_sets") or {}).items():
        figures |= _set_removals([e for e in entries if e["stage"] == "decontaminate" and e.get("eval_set") == name])


def _examples(sources: list[SourceRows], hits, index: EvalIndex | None, walk, read: ReadImage,
              max_pixels: int) -> list[dict]:
    """A few pairs per (evaluation set or dedupe, tier), in recipe order then rank order."""
    taken: Counter = Counter()
    out = []
    for n, source in enumerate(sources):
        for row in map(int, source.rank):
            if row not in hits[n]:
                continue
            stage, hit = hits[n][row]
            if stage == "decontaminate":
                eval_set, item = index.item(hit.ref)
                group = (eval_set.name, hit.tier)
            else:
                kept_n, kept_row = walk[hit.ref]
                group = ("dedupe", hit.tier)
            if taken[group] >= EXAMPLES:  # before any image is read: thumbnails only for the pairs shown
                continue
            if stage == "decontaminate":
                other = {"name": f"{eval_set.name}: {item.item}",
                         "thumbnail": file_thumbnail(eval_set.image_root, item.image, max_pixels)}
            else:
                other = {"name": sources[kept_n].labels[kept_row],
                         "thumbnail": _sample_thumbnail(read, kept_n, kept_row, sources, max_pixels)}
            taken[group] += 1
            out.append({"stage": stage, "group": group[0], "tier": hit.tier, "distance": hit.distance,
                        "sample": {"name": source.labels[row],
                                   "thumbnail": _sample_thumbnail(read, n, row, sources, max_pixels, hit.image)},
                        "match": other})
    return out


def _sample_thumbnail(read: ReadImage, n: int, row: int, sources: list[SourceRows], max_pixels: int,
                      k: int = 0) -> str | None:
    if not sources[n].images[row]:
        return None
    return thumbnail_uri(read(n, row, k), sources[n].images[row][k], max_pixels)
