"""`README.md`: the dataset card that lets Hugging Face `datasets` open a mix folder by its name alone.

`datasets.load_dataset(MIX_DIR, split="train")` reads the card's YAML header: `configs` lists the
shards by name (never a glob, so a stray tar beside them is not read) and `dataset_info.features`
declares every column, so the webdataset builder infers nothing. Inference would fail on a mix: it
reads the first 5 samples of the first shard and requires them to have the same members, but
text-only samples have no image member, members are `jpg`, `png` or `webp` (and `0.jpg`, `1.png`...
for several images), and `meta` has another shape per source (it is declared `json`).

The body says what the mix is (recipe, per-source counts) and how to load it. The card is written
before the manifest, which records its sha256 like every other file's.
"""

from __future__ import annotations

from collections.abc import Iterable

import yaml

# The `json` member: the unified schema plus the names of the sample's image members.
ROW_FEATURES = [
    {"name": "id", "dtype": "string"},
    {"name": "source", "dtype": "string"},
    {"name": "task", "dtype": "string"},
    {"name": "images", "list": "string"},
    {"name": "image_members", "list": "string"},
    {"name": "conversations", "list": [{"name": "from", "dtype": "string"}, {"name": "value", "dtype": "string"}]},
    {"name": "meta", "dtype": "json"},
]


def features(image_members: Iterable[str]) -> list[dict]:
    """`dataset_info.features` in the card's YAML form: key, json, and one image column per member suffix."""
    return ([{"name": "__key__", "dtype": "string"}, {"name": "json", "struct": ROW_FEATURES}]
            + [{"name": suffix, "dtype": "image"} for suffix in sorted(set(image_members))])


def header(shards: list[str], image_members: Iterable[str]) -> dict:
    return {
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": list(shards)}]}],
        "dataset_info": {"features": features(image_members)},
        "tags": ["datamix", "webdataset", "llava"],
    }


def card_text(*, name: str, description: str, samples: int, shards: list[str], image_members: Iterable[str],
              sources: dict[str, dict], parent: dict | None) -> str:
    """The whole card: YAML header, then what the mix holds and how to load it."""
    head = yaml.safe_dump(header(shards, image_members), sort_keys=False, allow_unicode=True)
    lines = ["---", head.rstrip("\n"), "---", "", f"# {name}", ""]
    if description:
        lines += [description.strip(), ""]
    if parent is not None and parent.get("ratio") is None:
        lines += [f"Cut from `{parent['name']}` by `datamix decontaminate`: {parent.get('removed', 0):,} samples that "
                  "show an evaluation image or repeat another were removed (see decontamination.json).", ""]
    elif parent is not None:
        lines += [f"A subsample of `{parent['name']}` at ratio {parent['ratio']:g}: every source's samples "
                  "ranked by the parent's seed, the first of each taken.", ""]
    lines += [f"{samples:,} samples in {len(shards)} WebDataset shard(s), written by datamix.", "",
              "| source | samples | share |", "|---|---:|---:|"]
    for source, counts in sources.items():
        share = counts["written"] / samples if samples else 0.0
        lines.append(f"| {source} | {counts['written']:,} | {share:.1%} |")
    lines += ["", "## Loading", "", "```python", "import datasets",
              f'mix = datasets.load_dataset("path/to/{name}", split="train")',
              "mix[0][\"json\"][\"conversations\"]  # image members are columns: jpg, png, webp (0.jpg, 1.png, ...)",
              "```", "",
              "Each sample is one `json` member (id, source, task, images, conversations, meta, image_members) and its",
              "images, named by `image_members`. With `webdataset`, read the shards listed in `manifest.json`;",
              "`datamix train` reads them the same way, and `datamix verify` checks every file against the manifest.",
              ""]
    return "\n".join(lines)
