"""The one writer of a mix folder: `datamix build` and `datamix subsample` both feed it.

Samples go into rolling shards and the index as they come; `finish` then writes, in this order,
rejects.jsonl, stats.json, the dataset card README.md and, last, manifest.json, which records the
sha256 of every one of them. Each file appears whole (written under a temporary name, then renamed),
and the manifest's presence is what says the folder is a finished mix. So a rung and a build have
the same files, the same stats schema and the same manifest schema; a rung's manifest names its parent.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from datamix.jsonio import write_jsonl
from datamix.ledger import tally_reasons
from datamix.mixdir.card import card_text
from datamix.mixdir.index import IndexWriter, SourceStats
from datamix.mixdir.layout import CARD, DECONTAMINATION, INDEX, RECORDED_FILES, REJECTS, STATS
from datamix.mixdir.manifest import Manifest, json_text, selection_digest
from datamix.mixdir.shards import ShardRecord, ShardWriter, pack_sample, sha256_file
from datamix.paths import remove_file, write_atomic

# What the caller knows of each source (the writer counts the rest): `images_checked` is how many image
# rows a build verified (0 in a rung, which copies bytes), `records_in` the raw records converted (None in a rung).
GIVEN_COUNTS = ("available", "requested", "selected", "images_checked", "records_in")


def key_width(total: int) -> int:
    """Digits of the sample keys: at least 6, enough for the last position."""
    return max(6, len(str(max(total - 1, 0))))


class MixWriter:
    """Writes one mix folder. `sources` in recipe order; `total` samples are expected (it sets the key width).

    `done`: shards already on disk from an interrupted build (journaled, verified), counted as if just written.
    """

    def __init__(self, out: Path, name: str, sources: list[str], *, total: int, max_samples: int, max_bytes: int,
                 journal: Path | None = None, done: list[ShardRecord] = ()):
        self.out, self.name, self.sources = Path(out), name, list(sources)
        self.width = key_width(total)
        self.done = list(done)
        self.image_members: set[str] = set()
        self.index = IndexWriter(self.sources, self.out / INDEX)
        for record in self.done:
            self._count_shard(self.out / record.name)
        self.shards = ShardWriter(self.out, name, max_samples=max_samples, max_bytes=max_bytes, journal=journal,
                                  start_index=len(self.done), start_position=sum(r.samples for r in self.done))

    @property
    def position(self) -> int:
        """The mix position of the next sample written."""
        return self.shards.position

    def key(self, position: int) -> str:
        return f"{position:0{self.width}d}"

    def write(self, row: dict, members: dict[str, bytes], notes: list[str | None], json_bytes: bytes | None = None):
        """One sample, prepared here (see `prepare_sample`) and appended."""
        self.append(prepare_sample(self.key(self.position), row, members, notes, json_bytes))

    def append(self, sample: ReadySample) -> None:
        """A sample prepared elsewhere (a build's worker processes): only its bytes and index row are added."""
        self._check_order(sample)
        self.shards.write(sample.packed)
        self._add_to_index(sample)

    def place(self, sample: ReadySample, size: int) -> bool:
        """A sample whose `size` packed bytes another process writes into its shard (`shards.write_shard`; its
        `packed` is not read): it takes its place in the shard plan and the index. True when it opens a shard;
        the caller then journals each finished shard in order (`shards.add_record`)."""
        self._check_order(sample)
        opens = self.shards.plan.place(size)
        self._add_to_index(sample)
        return opens

    def _check_order(self, sample: ReadySample) -> None:
        if sample.key != self.key(self.position):  # what keeps the output independent of the worker count
            raise ValueError(f"sample {sample.key} arrived at position {self.position}")

    def _add_to_index(self, sample: ReadySample) -> None:
        self.image_members.update(sample.row["image_members"])
        self.index.add(sample.key, self.shards.shard_name(self.shards.index), sample.row, sample.image_sha256,
                       sample.image_bytes, sample.notes)

    def abort(self) -> None:
        """Drop what is half-written (the open shard, the index); finished shards stay, as a kill leaves them."""
        self.shards.abort()
        self.index.abort()

    def finish(self, *, seed: int, recipe: dict, inputs: dict, counts: dict[str, dict], rejects: list[dict],
               parent: dict | None = None, decontamination: dict | None = None,
               examples: list[dict] | None = None) -> dict:
        """Write the records and, last, the manifest; returns the manifest as written.

        `decontamination`: the counts of samples removed by exclude / dedupe (manifest, stats.json and
        decontamination.json, which also holds the `examples` pairs for the report)."""
        shards = self.done + self.shards.close()
        stats = self.index.close()
        write_jsonl(self.out / REJECTS, rejects)
        per_source = {name: self._source_record(name, counts[name], stats.get(name, SourceStats()), rejects)
                      for name in self.sources}
        figures = self._statistics(per_source, parent)
        recorded = list(RECORDED_FILES)
        remove_file(self.out, DECONTAMINATION)  # an earlier build's: not this one's
        if decontamination is not None:
            figures["decontamination"] = decontamination
            write_atomic(self.out / DECONTAMINATION, json_text(decontamination | {"examples": examples or []}))
            recorded.append(DECONTAMINATION)
        write_atomic(self.out / STATS, json_text(figures))
        digests = self._digests(seed)
        card = card_text(name=self.name, description=recipe.get("description") or "",
                         samples=sum(s.samples for s in shards), shards=[s.name for s in shards],
                         image_members=self.image_members, sources=per_source, parent=parent)
        write_atomic(self.out / CARD, card)
        manifest = Manifest(
            name=self.name, seed=seed, recipe=recipe, inputs=inputs, parent=parent, decontamination=decontamination,
            sources={name: {k: per_source[name][k] for k in ("available", "requested", "selected", "written")}
                     | {"rejected": sum(sum(by_reason.values()) for by_reason in per_source[name]["rejected"].values()),
                        "selected_ids_sha256": digests.get(name, selection_digest(seed, name, []))}
                     for name in self.sources},
            samples=sum(s.samples for s in shards), bytes=sum(s.bytes for s in shards),
            shards=[s.__dict__ for s in shards],
            files={name: sha256_file(self.out / name) for name in recorded})
        return manifest.write(self.out)

    def _source_record(self, name: str, given: dict, stats: SourceStats, rejects: list[dict]) -> dict:
        record = {k: given.get(k) for k in GIVEN_COUNTS}
        record["written"] = stats.samples
        record["shortfall"] = record["requested"] - stats.samples
        by_stage: dict[str, list[dict]] = {}
        for r in rejects:
            if r["source"] == name:
                by_stage.setdefault(r.get("stage", "convert"), []).append(r)
        record["rejected"] = {stage: tally_reasons(rs) for stage, rs in sorted(by_stage.items())}
        return record | stats.to_dict()

    def _statistics(self, per_source: dict[str, dict], parent: dict | None) -> dict:
        """The figures `datamix stats` prints, from the index just written, plus what only the writer knows."""
        from datamix.stats import mix_records, stats_of_files

        figures = stats_of_files([self.out / INDEX], "image_sha256", name=self.name, kind="mix", order=self.sources,
                                 records=mix_records(per_source, self.out / REJECTS))
        for name in figures["sources"]:  # keep the writer-only keys (image bytes, re-encodings, shortfall)
            figures["sources"][name] = per_source[name] | figures["sources"][name]
        return figures | {"parent": parent}

    def _digests(self, seed: int) -> dict[str, str]:
        """selected_ids_sha256 per source, from what index.parquet says was written (verify recomputes it so)."""
        import pyarrow.parquet as pq

        table = pq.read_table(self.out / INDEX, columns=["id", "source"])
        by_source: dict[str, list[str]] = {}
        for sample_id, source in zip(table.column("id").to_pylist(), table.column("source").to_pylist()):
            by_source.setdefault(source, []).append(sample_id)
        return {source: selection_digest(seed, source, ids) for source, ids in by_source.items()}

    def _count_shard(self, path: Path) -> None:
        """Count an already written shard (a resumed build) exactly as if its samples had just been written."""
        with tarfile.open(path) as tar:
            members: dict[str, dict[str, bytes]] = {}
            for member in tar:
                key, suffix = member.name.split(".", 1)
                members.setdefault(key, {})[suffix] = tar.extractfile(member).read()
        for key, files in members.items():
            row = json.loads(files["json"])
            notes = row["meta"].get("reencoded") or [None] * len(row["image_members"])
            images = [files[suffix] for suffix in row["image_members"]]
            self.image_members.update(row["image_members"])
            self.index.add(key, path.name, row, [hashlib.sha256(d).hexdigest() for d in images],
                           [len(d) for d in images], notes)


@dataclass(frozen=True)
class ReadySample:
    """A sample ready to append: its tar members packed, its images hashed (what the index records)."""

    key: str
    row: dict
    packed: bytes
    image_sha256: list[str]
    image_bytes: list[int]
    notes: list[str | None]


def prepare_sample(key: str, row: dict, members: dict[str, bytes], notes: list[str | None],
                   json_bytes: bytes | None = None) -> ReadySample:
    """The CPU work of one sample (JSON encoding, sha256 of its images, tar headers), in any process.

    `json_bytes`: the json member as already encoded (a rung copies its parent's bytes untouched);
    by default the row is encoded canonically (`encode_row`).
    """
    images = [members[s] for s in row["image_members"]]
    packed = pack_sample(key, {"json": encode_row(row) if json_bytes is None else json_bytes, **members})
    return ReadySample(key, row, packed, [hashlib.sha256(d).hexdigest() for d in images],
                       [len(d) for d in images], notes)


def encode_row(row: dict) -> bytes:
    """The json member of a sample: canonical JSON (sorted keys, compact, UTF-8), so bytes never vary."""
    return json.dumps(row, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
