"""Paths datamix writes or deletes, each checked to stay inside the folder it belongs to.

A recipe is user input: a source name, a mix name or a manifest entry ends up in file names, and a
name like `/abs/dir` or `../../victim` must never make a build write or delete anything outside its
output folder. Every derived path goes through `inside`, and every deletion through `remove_tree` /
`remove_file`, which refuse a path that resolves outside its root (symlinks included).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from datamix.errors import InputError

# A name that becomes a file or folder name: letters, digits, '.', '_' and '-', starting with a letter or
# digit (so never `.`, `..`, a hidden file or an option), at most 128 characters.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def is_safe_name(name: object) -> bool:
    return isinstance(name, str) and NAME_PATTERN.fullmatch(name) is not None and ".." not in name


def inside(root: str | Path, *parts: str) -> Path:
    """`root / parts...`, refused unless it resolves inside `root` (its own symlinks followed)."""
    root = Path(root)
    path = root.joinpath(*parts)
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise InputError(f"{path}: refusing to write outside {root}")
    return path


def remove_tree(root: str | Path, *parts: str) -> None:
    """Delete the folder `root / parts...` (if it exists) once it is known to lie inside `root`."""
    path = inside(root, *parts)
    if path == Path(root) or os.path.realpath(path) == os.path.realpath(root):
        raise InputError(f"{path}: refusing to delete the folder itself")
    if path.is_symlink():  # never follow a link out of the root: remove the link, not what it points at
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def remove_file(root: str | Path, name: str) -> None:
    inside(root, name).unlink(missing_ok=True)



class Atomic:
    """A file written under a temporary name beside `path` and renamed onto it only when complete.

    A reader never sees a half-written file: until the rename it finds the old file or none. Used as
    `with Atomic(path) as tmp:` (renamed if the block ends cleanly, removed if it raises), or held
    open across calls by a streaming writer, which calls `commit()` or `discard()`.
    """

    def __init__(self, path: str | Path, attempt: str = ""):
        """`attempt`: a tag for the temporary name (`<name>.<attempt>.tmp`) when several writers may race."""
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + (f".{attempt}" if attempt else "") + ".tmp")

    def commit(self) -> None:
        self.tmp.replace(self.path)

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        self.discard() if exc_type else self.commit()


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write a whole small file (a manifest, a card, stats) under a temporary name, then rename it."""
    with Atomic(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
