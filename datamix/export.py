"""`datamix export`: a mix in the formats trainers already read.

- llava: the JSON list of llava_v1_5_mix665k.json (`id`, `image` as a string or a list, absent for
  text-only samples, `conversations`) plus the image files it names, bytes exactly as in the shards.
- hf: a Hugging Face `datasets` dataset written with `save_to_disk` (images as `Sequence(Image())`).

Both stream the shards once in mix order, so memory does not grow with the mix.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
from pathlib import Path, PurePosixPath

from datamix.errors import DatamixError, InputError
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


def export_llava(mix_dir: str | Path, out: str | Path, images_out: str | Path, *, verify: bool = True) -> dict:
    """Write the JSON list to `out` and the images under `images_out`; returns counts."""
    mix_dir, out, images_out = Path(mix_dir), Path(out), Path(images_out)
    load_manifest(mix_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    root = images_out.resolve()
    written: dict[Path, bytes] = {}  # file -> digest: repeated copies share one file, conflicts are caught
    samples = 0
    tmp = out.with_name(out.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("[")
            for key, row, images in iter_samples(mix_dir, verify=verify):
                paths = [_sample_image_path(row, key, i, suffix) for i, suffix in enumerate(row["image_members"])]
                for path, suffix in zip(paths, row["image_members"]):
                    _write_image(root, path, _member(images, suffix, row, key), written, _sample_name(row, key))
                f.write(("\n" if samples == 0 else ",\n") + json.dumps(llava_entry(row, paths), ensure_ascii=False))
                samples += 1
            f.write("\n]\n")
    except BaseException:  # a failed or interrupted export leaves no half-written JSON behind
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)  # the JSON appears only once every image it names is on disk
    return {"samples": samples, "images": len(written)}


def _sample_name(row: dict, key: str) -> str:
    return f"sample {row.get('id', '?')} (key {key})"


def _sample_image_path(row: dict, key: str, i: int, suffix: str) -> str:
    try:
        return image_path(row["source"], row["images"][i], suffix)
    except InputError as exc:
        raise InputError(f"{_sample_name(row, key)}: {exc}") from None
    except (KeyError, IndexError, TypeError):
        raise InputError(f"{_sample_name(row, key)}: no source or image path for image member {suffix!r}; "
                         f"run datamix verify on the mix") from None


def _member(images: dict[str, bytes], suffix: str, row: dict, key: str) -> bytes:
    if suffix not in images:
        raise InputError(f"{_sample_name(row, key)}: image member {suffix!r} named in its json is not in the "
                         f"shard; run datamix verify on the mix")
    return images[suffix]


def _write_image(root: Path, rel: str, data: bytes, written: dict[Path, bytes], sample: str) -> None:
    """Write `rel` under `root` (resolved), refusing any path that resolves outside it: the path is made of a
    source name and an original file name, and neither may take a write elsewhere (`..`, `/`, a symlink)."""
    target = (root / rel).resolve()
    if not target.is_relative_to(root):
        raise InputError(f"{sample}: its image path {rel!r} leads outside the images folder {root}; "
                         f"check the source name and the image paths of the mix")
    digest = hashlib.blake2b(data, digest_size=16).digest()
    if target in written:
        if written[target] != digest:
            raise InputError(f"{sample}: two different images would be written to {target}")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    written[target] = digest


def _hf_rows(mix_dir: str, verify: bool = True):
    for key, row, images in iter_samples(mix_dir, verify=verify):
        yield {"id": row["id"], "source": row["source"], "task": row["task"],
               "conversations": [{"from": t["from"], "value": t["value"]} for t in row["conversations"]],
               "images": [{"bytes": _member(images, s, row, key), "path": None} for s in row["image_members"]],
               "meta": json.dumps(row.get("meta", {}), ensure_ascii=False, sort_keys=True)}


def hf_features():
    from datasets import Features, Image, Sequence, Value

    text = Value("string")
    # A python list (not Sequence) keeps conversations a list of {from, value} dicts in every datasets version.
    return Features({"id": text, "source": text, "task": text, "conversations": [{"from": text, "value": text}],
                     "images": Sequence(Image()), "meta": text})


def _replaceable(out: Path) -> None:
    """Refuse `out` unless it is absent, empty or an earlier saved dataset (which the export replaces)."""
    if not out.exists():
        return
    if out.is_dir() and not any(out.iterdir()):
        return
    if out.is_dir() and (out / "state.json").is_file() and (out / "dataset_info.json").is_file():
        return
    raise InputError(f"{out}: exists and is not a saved dataset; choose an empty or new folder")


def export_hf(mix_dir: str | Path, out: str | Path, *, verify: bool = True) -> int:
    """save_to_disk a `datasets.Dataset` of the mix; returns its row count.

    Atomic: everything is written in a work folder `<out>.tmp-<pid>` beside `out` and renamed into place at
    the end, so `out` is either the previous dataset or the complete new one. An interrupted export removes
    its work folder; a killed one leaves it, and the next export to the same `out` removes it.
    """
    from datasets import Dataset
    from datasets.exceptions import DatasetGenerationError

    mix_dir, out = Path(mix_dir), Path(out)
    load_manifest(mix_dir)
    _replaceable(out)  # refuse before any work
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_work_folders(out):
        shutil.rmtree(stale)
    work = work_folder(out, os.getpid())
    work.mkdir()
    try:
        # A private cache: from_generator's cache is keyed by the generator and its arguments, not the shard
        # contents, so a shared cache could hand back a previous export of a rebuilt mix at the same path.
        try:
            dataset = Dataset.from_generator(_hf_rows, features=hf_features(), cache_dir=str(work / "cache"),
                                             gen_kwargs={"mix_dir": str(mix_dir), "verify": verify})
        except DatasetGenerationError as exc:
            if isinstance(exc.__cause__, DatamixError):  # datasets wraps what the generator raised
                raise exc.__cause__ from None
            raise
        dataset.save_to_disk(str(work / "dataset"))
        rows = dataset.num_rows
        del dataset  # release the cache files before the folder goes
        _replaceable(out)  # again: something else may have appeared there meanwhile
        if out.exists():
            out.rename(work / "previous")
        (work / "dataset").rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def work_folder(out: Path, pid: int) -> Path:
    return out.with_name(f"{out.name}.tmp-{pid}")


def stale_work_folders(out: Path) -> list[Path]:
    """Work folders of earlier exports to `out` whose process is gone (killed); those of a live one are kept."""
    pattern = re.compile(re.escape(out.name) + r"\.tmp-(\d+)")
    found = []
    for path in out.parent.glob(glob.escape(out.name) + ".tmp-*") if out.parent.is_dir() else []:
        match = pattern.fullmatch(path.name)
        if match and path.is_dir() and not _process_alive(int(match.group(1))):
            found.append(path)
    return sorted(found)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():  # our own earlier, interrupted export: this process is not using it any more
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
