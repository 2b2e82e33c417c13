"""What a recipe's `exclude:` and `dedupe:` sections (or `datamix decontaminate --against`) ask for.

Plain frozen dataclasses with no heavy imports: the recipe loader builds them, the builder and
`datamix decontaminate` read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TIERS = ("ids", "bytes", "pixels", "phash")
DEFAULT_PHASH = 4  # bits: the tight end of the usual 4 / 8 / 16 report thresholds
MAX_PHASH = 32  # beyond this two unrelated photos match: no threshold worth running
REFCOCO_EVAL_SPLITS = ("val", "test", "testA", "testB")
DEDUPE_IMAGES = ("bytes", "pixels", "phash")


@dataclass(frozen=True)
class EvalSpec:
    """One evaluation set: its kind (evalsets.READERS), its official file (or folder), its image folder."""

    name: str
    kind: str
    path: Path
    image_root: Path | None = None  # for the bytes / pixels / phash tiers
    splits: tuple[str, ...] = REFCOCO_EVAL_SPLITS  # refcoco only


@dataclass(frozen=True)
class Tiers:
    ids: bool = True
    bytes: bool = True
    pixels: bool = True
    phash: int | None = DEFAULT_PHASH  # Hamming threshold in bits; None: off

    @property
    def fingerprints(self) -> bool:
        return self.bytes or self.pixels or self.phash is not None

    def names(self) -> list[str]:
        return [t for t in TIERS if (self.phash is not None if t == "phash" else getattr(self, t))]


@dataclass(frozen=True)
class ExcludeSpec:
    sets: tuple[EvalSpec, ...]
    tiers: Tiers = Tiers()
    links: tuple[Path, ...] = ()  # Visual Genome image_data.json files: VG <-> COCO ids (coco_id)


@dataclass(frozen=True)
class DedupeSpec:
    images: str | None = None  # bytes | pixels | phash; None: images are not compared
    phash: int = DEFAULT_PHASH
    conversations: bool = False

    @property
    def fingerprints(self) -> bool:
        return self.images is not None
