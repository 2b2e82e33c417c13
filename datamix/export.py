"""`datamix export`: a mix in the formats trainers already read.

- llava: the JSON list of llava_v1_5_mix665k.json (`id`, `image` as a string or a list, absent for
  text-only samples, `conversations`) plus the image files it names, bytes exactly as in the shards.
- hf: a Hugging Face `datasets` dataset written with `save_to_disk` (images as `Sequence(Image())`).

Both stream the shards once in mix order, so memory does not grow with the mix.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from datamix.errors import InputError
from datamix.mixdir import iter_samples, load_manifest

FORMATS = ("llava", "hf")
_SAME_FORMAT = {"jpeg": "jpg"}


def image_path(source: str, original: str, suffix: str) -> str:
    """`<source>/<original relative path>`; the real extension is appended when the build re-encoded it.

    A re-encoded image (e.g. gif -> png) keeps its original name for traceability but gets the format
    it really is appended (`a.gif.png`): a loader trusting the extension is never lied to, and the name
    cannot collide with another original file.
    """
    rel = PurePosixPath(original)
    if rel.is_absolute() or ".." in rel.parts:
        raise InputError(f"image path {original!r} escapes the images folder")
    ext = suffix.rsplit(".", 1)[-1].lower()
    own = rel.suffix.lower().lstrip(".")
    name = str(rel) if _SAME_FORMAT.get(own, own) == ext else f"{rel}.{ext}"
    return f"{source}/{name}"


def llava_entry(row: dict, paths: list[str]) -> dict:
    """One record of the LLaVA training JSON."""
    entry: dict = {"id": row["id"]}
    if len(paths) == 1:
        entry["image"] = paths[0]
    elif paths:
        entry["image"] = paths
    entry["conversations"] = [{"from": t["from"], "value": t["value"]} for t in row["conversations"]]
    return entry


def export_llava(mix_dir: str | Path, out: str | Path, images_out: str | Path) -> dict:
    """Write the JSON list to `out` and the images under `images_out`; returns counts."""
    mix_dir, out, images_out = Path(mix_dir), Path(out), Path(images_out)
    load_manifest(mix_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    written: dict[str, bytes] = {}  # path -> digest: repeated copies share one file, conflicts are caught
    samples = 0
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("[")
        for key, row, images in iter_samples(mix_dir):
            paths = [image_path(row["source"], row["images"][i], suffix)
                     for i, suffix in enumerate(row["image_members"])]
            for path, suffix in zip(paths, row["image_members"]):
                _write_image(images_out, path, images[suffix], written)
            f.write(("\n" if samples == 0 else ",\n") + json.dumps(llava_entry(row, paths), ensure_ascii=False))
            samples += 1
        f.write("\n]\n")
    tmp.replace(out)  # the JSON appears only once every image it names is on disk
    return {"samples": samples, "images": len(written)}


def _write_image(root: Path, rel: str, data: bytes, written: dict[str, bytes]) -> None:
    digest = hashlib.blake2b(data, digest_size=16).digest()
    if rel in written:
        if written[rel] != digest:
            raise InputError(f"two different images would be written to {root / rel}")
        return
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    written[rel] = digest


def _hf_rows(mix_dir: str):
    for _, row, images in iter_samples(mix_dir):
        yield {"id": row["id"], "source": row["source"], "task": row["task"],
               "conversations": [{"from": t["from"], "value": t["value"]} for t in row["conversations"]],
               "images": [{"bytes": images[s], "path": None} for s in row["image_members"]],
               "meta": json.dumps(row.get("meta", {}), ensure_ascii=False, sort_keys=True)}


def hf_features():
    from datasets import Features, Image, Sequence, Value

    text = Value("string")
    # A python list (not Sequence) keeps conversations a list of {from, value} dicts in every datasets version.
    return Features({"id": text, "source": text, "task": text, "conversations": [{"from": text, "value": text}],
                     "images": Sequence(Image()), "meta": text})


def _replaceable(out: Path) -> None:
    """Clear `out` if it is an earlier saved dataset; refuse to delete anything else."""
    if not out.exists():
        return
    if out.is_dir() and not any(out.iterdir()):
        return
    if out.is_dir() and (out / "state.json").is_file() and (out / "dataset_info.json").is_file():
        shutil.rmtree(out)
        return
    raise InputError(f"{out}: exists and is not a saved dataset; choose an empty or new folder")


def export_hf(mix_dir: str | Path, out: str | Path) -> int:
    """save_to_disk a `datasets.Dataset` of the mix; returns its row count."""
    from datasets import Dataset

    mix_dir, out = Path(mix_dir), Path(out)
    load_manifest(mix_dir)
    _replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # A private cache: from_generator's cache is keyed by the generator and its arguments, not the shard
    # contents, so a shared cache could hand back a previous export of a rebuilt mix at the same path.
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".datamix-hf-") as cache:
        dataset = Dataset.from_generator(_hf_rows, features=hf_features(), cache_dir=cache,
                                         gen_kwargs={"mix_dir": str(mix_dir)})
        dataset.save_to_disk(str(out))
        rows = dataset.num_rows
        del dataset  # release the cache files before the folder goes
    return rows
