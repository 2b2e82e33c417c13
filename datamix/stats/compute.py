"""Assemble every figure of a target into one JSON-ready dict (what `--json` writes and the report shows)."""

from __future__ import annotations

from pathlib import Path

from datamix.stats import answers as ans
from datamix.stats import figures as fig
from datamix.stats import overlap
from datamix.stats.histograms import histograms
from datamix.stats.lengths import load_tokenizer
from datamix.stats.load import RECORD_KEYS, Target, load_target
from datamix.stats.scan import scan

FORMAT = "datamix-stats/1"


def compute_stats(target: Target | str | Path, tokenizer: str | Path | None = None) -> dict:
    """All figures of a mix folder / normalized Parquet (path or loaded Target), per source and in total."""
    target = target if isinstance(target, Target) else load_target(target)
    return stats_of_files(target.files, target.image_column, name=target.name, kind=target.kind,
                          order=target.order, records=target.records, tokenizer=tokenizer)


def stats_of_files(files: list, image_column: str, *, name: str, kind: str, order: list[str] | None = None,
                   records: dict[str, dict] | None = None, tokenizer: str | Path | None = None) -> dict:
    """The figures of Parquet files with the unified schema (normalized, or index.parquet with image_sha256)."""
    tok = load_tokenizer(tokenizer) if tokenizer is not None else None
    names, f = scan(files, image_column, tok)
    samples = f["samples"]
    total = 0 if samples is None else samples.height
    order = [s for s in (order or []) if s in names or (records and s in records)]
    sizes = {s: int((samples["src"] == i).sum()) for i, s in enumerate(names)} if total else {}
    order += sorted(set(names) - set(order), key=lambda s: (-sizes[s], s))
    parts: dict = {"basic": {}, "lengths": {}, "answers": {}, "format": {}}
    dups, dup_total, imgs, pairs, hist = {}, {"identical_conversations": 0, "identical_across_sources": 0}, {}, [], {}
    if total:
        parts = {"basic": fig.basic(samples, names), "lengths": fig.lengths(samples, f["turns"], names),
                 "answers": ans.answers(f["answers"], f["turns"], names),
                 "format": ans.format_coverage(f["questions"], samples, names)}
        dups, dup_total = overlap.duplicates(samples, names)
        imgs, pairs = overlap.images(f["images"], names)
        hist = histograms(samples, f["turns"], names, order)
    per_source = {}
    for key in [*order, fig.TOTAL]:
        block = _block(key, parts, dups, imgs, total)
        if records is not None:
            block |= _records(records, key)
        per_source[key] = block
    return {"format": FORMAT, "name": name, "kind": kind, "samples": total,
            "length_unit": "tokens" if tokenizer is not None else "words",
            "tokenizer": Path(tokenizer).name if tokenizer is not None else None,
            "sources": {k: per_source[k] for k in order}, "total": per_source[fig.TOTAL],
            "duplicates": dup_total, "image_overlap": pairs, "histograms": hist}


def _block(key: str, parts: dict, dups: dict, imgs: dict, total: int) -> dict:
    """One source's figures (zeros for a source the records list but no sample reached)."""
    basic = parts["basic"].get(key) or {"samples": 0, "turns": 0, "turns_per_sample": None, "images": 0,
                                        "text_only": 0, "text_only_share": None}
    block = dict(basic)
    block["share"] = round(basic["samples"] / total, 6) if total else 0.0
    block |= imgs.get(key, {"distinct_images": 0, "images_shared": 0})
    lengths = parts["lengths"].get(key, {})
    block |= {"length": lengths.get("length"), "length_total": lengths.get("length_total"),
              "supervised_share": lengths.get("supervised_share"),
              "answers": parts["answers"].get(key), "format_prompts": parts["format"].get(key),
              "duplicate_conversations": dups.get(key, 0)}
    return block


def _records(records: dict[str, dict], key: str) -> dict:
    """requested / selected / rejected from the manifest and rejects.jsonl; the total sums them."""
    if key != fig.TOTAL:
        return records.get(key, {"rejected": {}})
    out: dict = {k: sum(r.get(k, 0) for r in records.values()) for k in RECORD_KEYS}
    rejected: dict[str, dict[str, int]] = {}
    for r in records.values():
        for stage, reasons in r.get("rejected", {}).items():
            for reason, n in reasons.items():
                rejected.setdefault(stage, {})[reason] = rejected.setdefault(stage, {}).get(reason, 0) + n
    out["rejected"] = {s: dict(sorted(v.items())) for s, v in sorted(rejected.items())}
    return out
