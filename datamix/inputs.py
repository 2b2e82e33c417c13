"""Turn the PATH arguments of a command (files, folders, globs) into a sorted list of files."""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

from datamix.errors import InputError

JSON_SUFFIXES = (".json", ".jsonl")


def expand_inputs(patterns: Iterable[str | Path], suffixes: tuple[str, ...] = JSON_SUFFIXES) -> list[Path]:
    """Files are taken as they are; a folder contributes its files with `suffixes` (recursively); a glob expands.

    The result is sorted and free of duplicates, so the same inputs give the same order on every machine.
    """
    found: set[Path] = set()
    for pattern in patterns:
        found.update(_expand_one(str(pattern), suffixes))
    return sorted(found)


def _expand_one(pattern: str, suffixes: tuple[str, ...]) -> list[Path]:
    path = Path(pattern)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and p.name.endswith(suffixes)]
        if not files:
            raise InputError(f"{pattern}: folder holds no {'/'.join(suffixes)} files")
        return files
    if glob.has_magic(pattern):
        files = [Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file()]
        if not files:
            raise InputError(f"{pattern}: pattern matches no file")
        return files
    raise InputError(f"{pattern}: no such file or folder")
