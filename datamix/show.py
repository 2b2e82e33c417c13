"""`datamix show`: a few samples of a mix printed the way a person reads a chat.

Images are described, not decoded: Pillow's `Image.open` reads only the header for the size and format.
Long turns (LLaVA detail descriptions, ShareGPT essays) are wrapped and, unless asked, trimmed.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

from PIL import Image

from datamix.errors import InputError
from datamix.mixdir import iter_samples, load_manifest, read_index

WIDTH = 100
MAX_CHARS = 600  # per turn, unless --full


def describe_image(data: bytes) -> str:
    """`WxH FORMAT` from the header alone, or why it could not be read."""
    try:
        with Image.open(BytesIO(data)) as img:  # lazy: parses the header, decodes no pixels
            return f"{img.size[0]}x{img.size[1]} {img.format}"
    except Exception as exc:  # noqa: BLE001 - a bad image is shown as such, not a crash of `show`
        return f"unreadable ({type(exc).__name__})"


def pick_positions(mix_dir: Path, n: int, source: str | None) -> list[int]:
    """The first n positions in mix order, of one source if asked (decided from the index, no shard scan)."""
    table = read_index(mix_dir, ["source"])
    sources = table.column("source").to_pylist()
    if source is None:
        return list(range(min(n, len(sources))))
    if source not in set(sources):
        known = ", ".join(sorted(set(sources))) or "none"
        raise InputError(f"no sample of source {source!r} in {mix_dir}; sources: {known}")
    return [i for i, s in enumerate(sources) if s == source][:n]


def format_sample(key: str, row: dict, images: dict[str, bytes], *, full: bool = False) -> list[str]:
    lines = [f"=== {key}  {row['id']}  source={row['source']}  task={row['task']}"]
    for i, suffix in enumerate(row.get("image_members", [])):
        data = images.get(suffix, b"")
        name = row["images"][i] if i < len(row.get("images", [])) else "?"
        lines.append(f"  image [{suffix}] {name}  {describe_image(data)}  {len(data) / 1024:.1f} KB")
    if not row.get("image_members"):
        lines.append("  (text only)")
    for turn in row["conversations"]:
        lines.extend(format_turn(turn["from"], turn["value"], full=full))
    return lines


def format_turn(role: str, value: str, *, full: bool = False) -> list[str]:
    """`role: text`, wrapped under the role with the text's own line breaks kept."""
    if not full and len(value) > MAX_CHARS:
        value = value[:MAX_CHARS].rstrip() + f" [... {len(value) - MAX_CHARS:,} more chars]"
    head, indent = f"{role}: ", " " * (len(role) + 2)
    out = []
    for paragraph in value.split("\n") or [""]:
        out.extend(textwrap.wrap(paragraph, WIDTH, initial_indent=indent, subsequent_indent=indent,
                                 break_long_words=True) or [indent])
    out[0] = head + out[0][len(indent):]
    return out


def show(mix_dir: str | Path, *, n: int = 5, source: str | None = None, full: bool = False) -> Iterator[str]:
    """Lines to print for the first n samples (of `source`, if given)."""
    mix_dir = Path(mix_dir)
    manifest = load_manifest(mix_dir)
    yield f"{manifest['name']}: {manifest['samples']:,} samples in {len(manifest['shards'])} shard(s)"
    positions = pick_positions(mix_dir, n, source)
    if not positions:
        return
    for key, row, images in iter_samples(mix_dir, positions=positions, manifest=manifest):
        yield ""
        yield from format_sample(key, row, images, full=full)
