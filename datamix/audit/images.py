"""`--image-root`: which released image paths do not exist under LLaVA's image folder.

LLaVA's trainer opens every image with PIL and has no skip (train.py), so one missing file stops a run.
Paths are checked without ever touching anything outside the root: a path that is absolute or has a `..`
component is `unsafe` and never looked up; the others go through `images.resolve_image` (the one owner of
"under the root", symlinks included) and are only stat'ed, never read. Each distinct path is checked once.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from datamix.errors import InputError
from datamix.images import resolve_image

EXAMPLES = 5
UNSAFE = r"^[/\\]|^[A-Za-z]:|(^|[/\\])\.\.([/\\]|$)|\x00"


def check_images(images: pl.DataFrame, root: str | Path) -> dict[str, dict]:
    """{"classes": {class: images (distinct paths), missing, unsafe, examples_missing, examples_unsafe}, "total"}."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: --image-root is not a folder (give LLaVA's image folder, playground/data)")
    paths = images.select("class", "path").unique(maintain_order=True)
    distinct = paths.select("path").unique(maintain_order=True)
    unsafe = distinct["path"].str.contains(UNSAFE)
    status = [("unsafe" if bad else _status(root, p)) for p, bad in zip(distinct["path"], unsafe)]
    paths = paths.join(distinct.with_columns(status=pl.Series(status, dtype=pl.String)), on="path", how="left",
                       maintain_order="left")
    out = {cls: _figures(frame) for (cls,), frame in paths.group_by("class", maintain_order=True)}
    return {"classes": out, "total": _figures(paths.unique("path", maintain_order=True))}


def _figures(frame: pl.DataFrame) -> dict:
    return {
        "images": frame.height,
        "missing": int((frame["status"] == "missing").sum()),
        "unsafe": int((frame["status"] == "unsafe").sum()),
        "examples_missing": frame.filter(pl.col("status") == "missing")["path"].head(EXAMPLES).to_list(),
        "examples_unsafe": frame.filter(pl.col("status") == "unsafe")["path"].head(EXAMPLES).to_list(),
    }


def _status(root: Path, path: str) -> str:
    resolved = resolve_image(root, path)
    if isinstance(resolved, str):  # a symlink that leads out of the root
        return "unsafe"
    return "ok" if resolved.is_file() else "missing"
