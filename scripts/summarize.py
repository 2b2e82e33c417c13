"""Print, for each normalized Parquet file in a folder, its counts and its first sample as a chat."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl


def main(folder: str) -> None:
    for path in sorted(Path(folder).glob("*.parquet")):
        frame = pl.read_parquet(path)
        turns = frame["conversations"].list.len()
        print(f"\n{path.name}: {frame.height} samples, {int(turns.sum()) // 2} QA exchanges, "
              f"tasks {dict(frame['task'].value_counts().iter_rows())}")
        first = frame.row(0, named=True)
        print(f"  {first['id']}  images={first['images']}")
        for turn in first["conversations"][:4]:
            print(f"    {turn['from']:>5}: {turn['value'][:100]!r}")


if __name__ == "__main__":
    main(sys.argv[1])
