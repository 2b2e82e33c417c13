"""Data: stream a mix's shards with webdataset, preprocess images (LLaVA train.py: image_aspect_ratio square / pad), batch, collate.

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
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from datamix.errors import DatamixError
from datamix.mixdir import MANIFEST, load_manifest
from datamix.mixdir.shards import sha256_file
from datamix.train.config import TrainError
from datamix.train.template import IGNORE_INDEX, encode_many


def mix_shards(mix_dir: str | Path) -> tuple[list[str], int]:
    """Shard paths listed in the manifest (never a glob) and the sample count (see `mix_shard_counts`)."""
    counts = mix_shard_counts(mix_dir)
    return list(counts), sum(counts.values())


def mix_shard_counts(mix_dir: str | Path, *, verify_hashes: bool = False) -> dict[str, int]:
    """Path -> samples of every shard, in manifest order; clear errors for a bad folder: no manifest, shards
    missing, or a shard whose size is not the manifest's (truncated or replaced: a stat per shard catches it
    before anything is trained). `read_samples` checks the counts themselves as it streams.
    `verify_hashes`: also the sha256 of every shard (one read of the mix, before the first step: a flipped
    byte must not train for days unnoticed)."""
    mix_dir = Path(mix_dir)
    shards = load_manifest(mix_dir)["shards"]
    paths = [shard_path(mix_dir, s) for s in shards]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise TrainError(f"{mix_dir}: {len(missing)} shard(s) listed in the manifest are missing, e.g. {missing[0]}; "
                         f"run datamix verify {mix_dir}")
    for path, s in zip(paths, shards):
        if isinstance(s.get("bytes"), int) and path.stat().st_size != s["bytes"]:
            raise TrainError(f"{path}: {path.stat().st_size:,} bytes, but the manifest says {s['bytes']:,}: the "
                             f"shard is truncated or was replaced; run datamix verify {mix_dir}")
        if verify_hashes and sha256_file(path) != s.get("sha256"):
            raise TrainError(f"{path}: changed since it was written (sha256 differs from the manifest); run "
                             f"datamix verify {mix_dir}, or train with --no-verify to use it anyway")
    return {str(p): s["samples"] for p, s in zip(paths, shards)}


def shard_path(mix_dir: Path, entry) -> Path:
    """A manifest shard entry's file: a plain name inside the mix folder, never a path that leaves it."""
    name = entry.get("name") if isinstance(entry, dict) else None
    if (not isinstance(name, str) or not isinstance(entry.get("samples"), int) or name in ("", ".", "..")
            or Path(name).name != name or "\\" in name):
        raise TrainError(f"{mix_dir / MANIFEST}: bad shard entry {entry!r} (a file name and a sample count "
                         f"expected); rebuild the mix")
    return mix_dir / name


def check_slots(n_shards: int, world_size: int, workers: int) -> None:
    slots = world_size * max(workers, 1)
    if n_shards < slots:
        raise TrainError(f"the mix has {n_shards} shard(s) but {world_size} process(es) x {max(workers, 1)} "
                         f"worker(s) need at least {slots}; use fewer --workers or processes, or rebuild the mix "
                         f"with smaller shards (recipe `shards: {{max_samples: ...}}`)")


def read_samples(paths: list[str], counts: Mapping[str, int] | None = None) -> Iterator[dict]:
    """Raw samples of some shards in order: the parsed JSON plus the image bytes under `_images` and the shard
    under `_shard`. A shard that is no readable tar, a sample missing its json or an image it names, or (given
    `counts`, path -> samples from the manifest) a shard with another number of samples is a TrainError
    naming the shard: a damaged shard stops the run instead of silently training on less (tarfile ends a
    stream quietly at a damaged header)."""
    for path in paths:
        yield from _shard_samples(path, None if counts is None else counts[path])


def _shard_samples(path: str, expected: int | None) -> Iterator[dict]:
    n = 0
    try:
        for raw in _webdataset_samples(path):
            n += 1
            yield _parse_sample(raw, path)
    except (tarfile.TarError, OSError, EOFError) as exc:
        # webdataset appends " @ <file object>" to the message; the path is said once, first.
        reason = str(exc.args[0]).split(" @ ")[0] if exc.args else type(exc).__name__
        raise TrainError(f"{path}: not a readable tar shard ({reason}); run datamix verify on the mix") from None
    if expected is not None and n != expected:
        raise TrainError(f"{path}: {n} samples read, but the manifest says {expected}: the shard is damaged; "
                         f"run datamix verify on the mix")


def _parse_sample(raw: dict, path: str) -> dict:
    where = f"{path}: sample {raw.get('__key__', '?')}"
    if "json" not in raw:
        raise TrainError(f"{where} has no json member (a truncated or damaged shard); run datamix verify on the mix")
    try:
        sample = json.loads(raw["json"])
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError for bytes in no UTF encoding
        raise TrainError(f"{where}: its json member is not valid JSON ({exc}); run datamix verify on the "
                         f"mix") from None
    members = sample.get("image_members", []) if isinstance(sample, dict) else None
    if not isinstance(sample, dict) or not isinstance(sample.get("conversations"), list) \
            or not isinstance(members, list):
        raise TrainError(f"{where}: its json member is not a datamix sample (conversations and image_members "
                         f"lists expected); run datamix verify on the mix")
    absent = [m for m in members if m not in raw]
    if absent:
        raise TrainError(f"{where}: image member {absent[0]!r} named in its json is not in the shard; "
                         f"run datamix verify on the mix")
    sample["_images"] = [raw[m] for m in members]
    sample["_shard"] = path
    return sample


def _webdataset_samples(path: str) -> Iterator[dict]:
    import webdataset as wds

    return iter(wds.DataPipeline(wds.SimpleShardList([path]), wds.tarfile_to_samples()))


def expand2square(image: Image.Image, fill: tuple[int, int, int]) -> Image.Image:
    """Paste centred on a square canvas of the mean colour (mm_utils.py:152-182)."""
    w, h = image.size
    if w == h:
        return image
    side = max(w, h)
    canvas = Image.new(image.mode, (side, side), fill)
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    return canvas


def preprocess_image(data: bytes, processor, aspect: str, where: str = "image") -> torch.Tensor:
    """Stage 2 `pad`: expand-to-square with the processor's mean colour, (122, 116, 104) for CLIP; stage 1
    `square`: the processor alone (shortest-edge resize + center crop)."""
    prep = ImagePrep.of(processor)
    if prep is not None:
        return prep.normalize(np.stack([prep.crop(open_image(data, processor, aspect, where))]))[0]
    return processor(images=open_image(data, processor, aspect, where), return_tensors="pt")["pixel_values"][0]


def open_image(data: bytes, processor, aspect: str, where: str = "image") -> Image.Image:
    image = decode_image(data, where)
    if image.mode != "RGB":  # convert would copy an RGB image for nothing
        image = image.convert("RGB")
    if aspect == "pad":
        image = expand2square(image, tuple(int(x * 255) for x in processor.image_mean))
    return image


def decode_image(data: bytes, where: str) -> Image.Image:
    """The decoded image (decoded now, so a damaged one fails here, named, not deep inside a resize)."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except UnidentifiedImageError:  # its message names the BytesIO object, nothing useful
        raise TrainError(f"{where}: not a readable image (no format Pillow knows); run datamix verify on the "
                         f"mix") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise TrainError(f"{where}: not a readable image ({exc}); run datamix verify on the mix") from None
    return image


def _size(size, key: str):
    return size.get(key) if isinstance(size, dict) else getattr(size, key, None)  # a dict or transformers' SizeDict


@dataclass(frozen=True)
class ImagePrep:
    """The PIL-backed CLIP processor's steps, split in two so the per-pixel float work runs once per batch:
    `crop` (PIL resize of the shortest edge + center crop, uint8) per image, `normalize` per batch.

    The processor itself turns the image into an array and back around the PIL resize, rescales in float64 and
    normalizes per image; that is most of its cost. `normalize` gets the same float32 values from a table of the
    processor's own arithmetic for the 256 byte values of each channel. Built only for the configurations it
    reproduces (see `of`); any other processor is used as it is.
    """

    shortest_edge: int
    crop_hw: tuple[int, int]
    resample: int
    table: np.ndarray = field(repr=False)  # (3, 256) float32: each byte value of each channel, as the processor

    @classmethod
    def of(cls, processor) -> ImagePrep | None:
        """The fast path for `processor`, or None where it would not give the processor's pixels."""
        p = processor
        if not _reproducible(p):
            return None
        crop = (_size(p.crop_size, "height"), _size(p.crop_size, "width"))
        return cls(_size(p.size, "shortest_edge"), crop, int(p.resample), _table(p))

    def crop(self, image: Image.Image) -> np.ndarray:
        """(H, W, 3) uint8: the processor's resize (its size rule, filter and PIL) and center crop."""
        w, h = image.size
        short, long = min(w, h), max(w, h)
        new_long = int(self.shortest_edge * long / short)  # transformers' get_resize_output_image_size
        size = (self.shortest_edge, new_long) if w <= h else (new_long, self.shortest_edge)
        array = np.asarray(image.resize(size, resample=self.resample))
        (ch, cw), (rh, rw) = self.crop_hw, array.shape[:2]
        top, left = (rh - ch) // 2, (rw - cw) // 2
        return array[top:top + ch, left:left + cw]

    def normalize(self, crops: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, 3, H, W) float32, by table look-up."""
        n, h, w, _ = crops.shape
        out = np.empty((n, 3, h, w), dtype=np.float32)
        for c in range(3):  # one np.take per channel: several times faster than one broadcast fancy index
            np.take(self.table[c], crops[..., c], out=out[:, c])
        return torch.from_numpy(out)


def _reproducible(p) -> bool:
    """A PIL-backed processor (torchvision's resize differs) doing shortest-edge resize, a center crop that fits
    inside it, rescale and normalize of 3 channels, nothing more."""
    edge, crop = _size(p.size, "shortest_edge"), (_size(p.crop_size, "height"), _size(p.crop_size, "width"))
    return (getattr(p, "backend", "pil") == "pil" and not type(p).__name__.endswith("Fast")
            and bool(p.do_resize and p.do_center_crop and p.do_rescale and p.do_normalize)
            and not getattr(p, "do_pad", False) and bool(edge) and None not in crop and max(crop) <= edge
            and not any(_size(p.size, k) for k in ("height", "width", "longest_edge"))
            and np.shape(p.image_mean) == np.shape(p.image_std) == (3,))


def _table(processor) -> np.ndarray:
    """transformers' rescale (float64 multiply, then float32) and normalize (float32) of every byte value."""
    levels = (np.arange(256, dtype=np.float64) * processor.rescale_factor).astype(np.float32)
    mean = np.array(processor.image_mean, dtype=np.float32)[:, None]
    std = np.array(processor.image_std, dtype=np.float32)[:, None]
    return ((levels[None, :] - mean) / std).astype(np.float32)


@dataclass
class Encoder:
    """Everything needed to turn raw samples into tensors; pickled into each DataLoader worker."""

    tokenizer: object
    processor: object
    template: str
    aspect: str
    image_seq_length: int
    image_token_id: int
    max_length: int
    # tokens of the text before each <image> (the system prompt in vicuna_v1), shared by the samples (template.py)
    chunk_cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __call__(self, sample: dict) -> dict:
        return self.items([sample])[0]

    def items(self, samples: list[dict]) -> list[dict]:
        """Per sample: ids, labels and the images as (3, H, W) tensors."""
        encoded, counts, pixels = self._encode(samples)
        groups = torch.split(pixels, counts) if pixels is not None else [[]] * len(samples)
        return [{"input_ids": e.input_ids, "labels": e.labels, "pixel_values": list(g)}
                for e, g in zip(encoded, groups)]

    def batch(self, samples: list[dict]) -> dict:
        """The collated batch of `samples` (what `collate` makes of their `items`), images normalized at once."""
        encoded, _, pixels = self._encode(samples)
        out = collate([{"input_ids": e.input_ids, "labels": e.labels, "pixel_values": []} for e in encoded],
                      self.tokenizer.pad_token_id)
        out["pixel_values"] = pixels
        return out

    @cached_property
    def prep(self) -> ImagePrep | None:
        return ImagePrep.of(self.processor)

    def _encode(self, samples: list[dict]) -> tuple[list, list[int], torch.Tensor | None]:
        """The encodings, the image count of each sample and all the images as one (N, 3, H, W) tensor or None."""
        encoded = encode_many(self.tokenizer, [(s["conversations"], s.get("id", "?")) for s in samples],
                              template=self.template, image_seq_length=self.image_seq_length,
                              image_token_id=self.image_token_id, max_length=self.max_length,
                              cache=self.chunk_cache)
        datas = [s["_images"][:e.n_images] for s, e in zip(samples, encoded)]
        images = [open_image(b, self.processor, self.aspect, where=_image_name(s, k))
                  for s, group in zip(samples, datas) for k, b in enumerate(group)]
        return encoded, [len(group) for group in datas], self._pixels(images) if images else None

    def _pixels(self, images: list[Image.Image]) -> torch.Tensor:
        if self.prep is None:
            return torch.stack([self.processor(images=im, return_tensors="pt")["pixel_values"][0] for im in images])
        return self.prep.normalize(np.stack([self.prep.crop(im) for im in images]))


def _image_name(sample: dict, k: int) -> str:
    return f"{sample.get('_shard', 'mix')}: sample {sample.get('id', '?')} image {k}"


def collate(items: list[dict], pad_id: int) -> dict:
    """Right-pad ids with the pad id and labels with -100; stack the images of the batch in sample order.

    The padded arrays are filled in numpy and turned into tensors once (cheaper than a tensor per row)."""
    width = max(len(x["input_ids"]) for x in items)
    ids = np.full((len(items), width), pad_id, dtype=np.int64)
    labels = np.full((len(items), width), IGNORE_INDEX, dtype=np.int64)
    mask = np.zeros((len(items), width), dtype=np.int64)
    for i, x in enumerate(items):
        n = len(x["input_ids"])
        ids[i, :n], labels[i, :n], mask[i, :n] = x["input_ids"], x["labels"], 1
    pixels = [p for x in items for p in x["pixel_values"]]
    return {"input_ids": torch.from_numpy(ids), "labels": torch.from_numpy(labels),
            "attention_mask": torch.from_numpy(mask), "pixel_values": torch.stack(pixels) if pixels else None}


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
                 group_by_modality: bool, images_only: bool, counts: Mapping[str, int] | None = None):
        super().__init__()
        self.counts = counts  # path -> samples (manifest), checked as each shard is read
        self.shards, self.encoder, self.batch_size, self.megabatch = shards, encoder, batch_size, megabatch
        self.epoch, self.seed, self.rank, self.world_size, self.skip = epoch, seed, rank, world_size, skip
        self.shuffle_buffer, self.group_by_modality, self.images_only = shuffle_buffer, group_by_modality, images_only

    def slot_shards(self, worker: int, n_workers: int) -> list[str]:
        order = list(self.shards)
        random.Random(f"{self.seed}:{self.epoch}").shuffle(order)  # the same on every rank and worker
        slot = self.rank * n_workers + worker
        return order[slot::self.world_size * n_workers]

    def __iter__(self) -> Iterator[dict]:
        """The batches; a DatamixError (a damaged shard) ends the stream as a last `{"error": message}` item,
        since DataLoader would re-raise it from a worker with the worker's whole traceback as its message."""
        try:
            yield from self._batches()
        except DatamixError as exc:
            yield {"error": str(exc)}

    def _batches(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info else (0, 1)
        rng = random.Random(f"{self.seed}:{self.epoch}:{self.rank}:{worker}")
        samples = read_samples(self.slot_shards(worker, n_workers), self.counts)
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
            out = self.encoder.batch(batch)
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
