"""Data: stream a mix's shards with webdataset, preprocess images (LLAVA15.md §5), batch, collate.

Sharding: every epoch the manifest's shard list is shuffled with (seed, epoch) and dealt out to the
ranks x workers "slots", so each DataLoader worker of each process reads its own shards (webdataset's
split_by_node / split_by_worker idea, with the order decided here so it is reproducible and resumable).
Within a slot a seeded buffer shuffles samples. Batches are formed from the JSON only, before any image is
decoded, so resuming skips the batches already seen without decoding them.

`group_by_modality` (§9) is the streaming form of LLaVA's sampler: within a window of samples, image and
text-only samples go to separate micro-batches, sorted by word count inside a megabatch. LLaVA's sampler
sees the whole epoch and makes every *global* batch single-modality; a stream can only promise it per
micro-batch.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from datamix.train.config import TrainError
from datamix.train.template import IGNORE_INDEX, encode


def mix_shards(mix_dir: str | Path) -> tuple[list[str], int]:
    """Shard paths listed in the manifest (never a glob) and the sample count; clear errors for a bad folder."""
    manifest = Path(mix_dir) / "manifest.json"
    if not manifest.is_file():
        raise TrainError(f"{mix_dir}: no manifest.json; give a folder written by `datamix build` (it writes the "
                         f"manifest last, so a missing one also means an unfinished build)")
    shards = json.loads(manifest.read_text())["shards"]
    paths = [str(Path(mix_dir) / s["name"]) for s in shards]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise TrainError(f"{mix_dir}: {len(missing)} shard(s) listed in the manifest are missing, e.g. {missing[0]}")
    return paths, sum(s["samples"] for s in shards)


def check_slots(n_shards: int, world_size: int, workers: int) -> None:
    slots = world_size * max(workers, 1)
    if n_shards < slots:
        raise TrainError(f"the mix has {n_shards} shard(s) but {world_size} process(es) x {max(workers, 1)} "
                         f"worker(s) need at least {slots}; use fewer --workers or processes, or rebuild the mix "
                         f"with smaller shards (recipe `shards: {{max_samples: ...}}`)")


def read_samples(paths: list[str]) -> Iterator[dict]:
    """Raw samples of some shards in order: the parsed JSON plus the image bytes under `_images`."""
    import webdataset as wds

    pipeline = wds.DataPipeline(wds.SimpleShardList(paths), wds.tarfile_to_samples())
    for raw in pipeline:
        sample = json.loads(raw["json"])
        sample["_images"] = [raw[suffix] for suffix in sample.get("image_members", [])]
        yield sample


def expand2square(image: Image.Image, fill: tuple[int, int, int]) -> Image.Image:
    """Paste centred on a square canvas of the mean colour (mm_utils.py:152-182)."""
    w, h = image.size
    if w == h:
        return image
    side = max(w, h)
    canvas = Image.new(image.mode, (side, side), fill)
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    return canvas


def preprocess_image(data: bytes, processor, aspect: str) -> torch.Tensor:
    """Stage 2 `pad`: expand-to-square with the processor's mean colour, (122, 116, 104) for CLIP; stage 1
    `square`: the processor alone (shortest-edge resize + center crop)."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if aspect == "pad":
        image = expand2square(image, tuple(int(x * 255) for x in processor.image_mean))
    return processor(images=image, return_tensors="pt")["pixel_values"][0]


@dataclass
class Encoder:
    """Everything needed to turn a raw sample into tensors; pickled into each DataLoader worker."""

    tokenizer: object
    processor: object
    template: str
    aspect: str
    image_seq_length: int
    image_token_id: int
    max_length: int

    def __call__(self, sample: dict) -> dict:
        enc = encode(self.tokenizer, sample["conversations"], template=self.template,
                     image_seq_length=self.image_seq_length, image_token_id=self.image_token_id,
                     max_length=self.max_length, sample_id=sample.get("id", "?"))
        pixels = [preprocess_image(b, self.processor, self.aspect) for b in sample["_images"][:enc.n_images]]
        return {"input_ids": enc.input_ids, "labels": enc.labels, "pixel_values": pixels}


def collate(items: list[dict], pad_id: int) -> dict:
    """Right-pad ids with the pad id and labels with -100; stack the images of the batch in sample order."""
    width = max(len(x["input_ids"]) for x in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for i, x in enumerate(items):
        n = len(x["input_ids"])
        ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(x["input_ids"]), torch.tensor(x["labels"]), 1
    pixels = [p for x in items for p in x["pixel_values"]]
    return {"input_ids": ids, "labels": labels, "attention_mask": mask,
            "pixel_values": torch.stack(pixels) if pixels else None}


def word_length(sample: dict) -> int:
    """LLaVA's modality length (train.py:683-690): words over all turns, negative for text-only samples."""
    words = sum(len(t["value"].split()) for t in sample["conversations"])
    return words if sample.get("images") else -words


def plain_batches(samples: Iterator[dict], size: int) -> Iterator[list[dict]]:
    batch = []
    for s in samples:
        batch.append(s)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def modality_batches(samples: Iterator[dict], size: int, megabatch: int, rng: random.Random,
                     window: int = 32) -> Iterator[list[dict]]:
    """Single-modality micro-batches, length-sorted within megabatches, in shuffled order (§9, streaming)."""
    pending = {True: [], False: []}
    for group in plain_batches(samples, window * size):
        for s in group:
            pending[word_length(s) > 0].append(s)
        ready = []
        for modality, items in pending.items():
            full = len(items) - len(items) % size
            ready += _sorted_chunks(items[:full], size, megabatch)
            pending[modality] = items[full:]
        rng.shuffle(ready)
        yield from ready
    # The leftovers form the last, mixed batch(es), like LLaVA's final megabatch.
    yield from plain_batches(iter(pending[True] + pending[False]), size)


def _sorted_chunks(items: list[dict], size: int, megabatch: int) -> list[list[dict]]:
    chunks = []
    for start in range(0, len(items), megabatch):
        mega = sorted(items[start:start + megabatch], key=lambda s: -abs(word_length(s)))
        chunks += [mega[i:i + size] for i in range(0, len(mega), size)]
    return chunks


class MixStream(IterableDataset):
    """One epoch of one process's share of a mix, as collated micro-batches tagged with their worker.

    `skip[w]` batches of worker `w` are dropped undecoded: the data position of a resumed run.
    """

    def __init__(self, shards: list[str], encoder: Encoder, *, batch_size: int, megabatch: int, epoch: int,
                 seed: int, rank: int, world_size: int, skip: list[int], shuffle_buffer: int,
                 group_by_modality: bool, images_only: bool):
        super().__init__()
        self.shards, self.encoder, self.batch_size, self.megabatch = shards, encoder, batch_size, megabatch
        self.epoch, self.seed, self.rank, self.world_size, self.skip = epoch, seed, rank, world_size, skip
        self.shuffle_buffer, self.group_by_modality, self.images_only = shuffle_buffer, group_by_modality, images_only

    def slot_shards(self, worker: int, n_workers: int) -> list[str]:
        order = list(self.shards)
        random.Random(f"{self.seed}:{self.epoch}").shuffle(order)  # the same on every rank and worker
        slot = self.rank * n_workers + worker
        return order[slot::self.world_size * n_workers]

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info else (0, 1)
        rng = random.Random(f"{self.seed}:{self.epoch}:{self.rank}:{worker}")
        samples = read_samples(self.slot_shards(worker, n_workers))
        if self.images_only:  # the plain template (stage 1) has nothing to learn from text-only samples
            samples = (s for s in samples if s.get("image_members"))
        samples = _shuffled(samples, self.shuffle_buffer, rng)
        if self.group_by_modality:
            batches = modality_batches(samples, self.batch_size, self.megabatch, rng)
        else:
            batches = plain_batches(samples, self.batch_size)
        for k, batch in enumerate(batches):
            if k < self.skip[worker]:
                continue
            out = collate([self.encoder(s) for s in batch], self.encoder.tokenizer.pad_token_id)
            out["worker"], out["ids"] = worker, [s.get("id", "?") for s in batch]
            yield out


def _shuffled(samples: Iterator[dict], size: int, rng: random.Random) -> Iterator[dict]:
    """A seeded shuffle buffer (webdataset's `shuffle`, with a local RNG so runs are reproducible)."""
    buffer = []
    for s in samples:
        buffer.append(s)
        if len(buffer) >= size:
            yield buffer.pop(rng.randrange(len(buffer)))
    rng.shuffle(buffer)
    yield from buffer


def make_loader(stream: MixStream, workers: int) -> DataLoader:
    # batch_size=None: the stream yields whole batches; workers are started per epoch (the epoch seeds them).
    return DataLoader(stream, batch_size=None, num_workers=workers, prefetch_factor=4 if workers else None)
