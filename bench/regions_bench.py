"""Benchmarks of the region-level converters (`bench/run.py --only regions`, or run this file).

Inputs in the official formats at full train-split scale, generated once and cached under <work>/regions/:
- Visual Genome v1.2: `region_descriptions.json` with 108,077 images and 5.4M regions (~50 per image, as the
  real file: 5,408,689 regions) and `image_data.json` (sizes, VG_100K / VG_100K_2 urls);
- RefCOCO + RefCOCO+ + RefCOCOg: three folders, each a Python-2-style protocol-2 `refs(<splitBy>).p` and a
  COCO `instances.json` with polygons; 142,210 refs in all (50,000 + 49,856 + 42,354, train/val/test splits
  as in the real files), ~20K images and ~200K annotations per folder like the real instances.json.

Each job runs in a fresh process (bench/measure.py): (a) the plain load of the same files (`json.load`,
`pickle.load`), (b) `datamix convert` end to end (parse, join, boxes, sampling, turns, Parquet + ledger).
Prints wall time, peak RSS and RSS / input size. `--scale` shrinks both inputs (e.g. 0.1 for a quick look).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from tests.refcoco_fixtures import py2_pickle  # noqa: E402 - the Python-2 pickle writer of the test fixtures

VG_IMAGES, VG_REGIONS = 108_077, 5_408_689
# (folder, splitBy, refs, images, annotations, split shares) of the three official releases
REFCOCO_SETS = (("refcoco", "unc", 50_000, 19_994, 196_771, {"train": 0.85, "val": 0.076, "testA": 0.038,
                                                             "testB": 0.036}),
                ("refcoco+", "unc", 49_856, 19_992, 196_737, {"train": 0.85, "val": 0.076, "testA": 0.038,
                                                              "testB": 0.036}),
                ("refcocog", "umd", 42_354, 25_799, 208_960, {"train": 0.85, "val": 0.05, "test": 0.1}))
WORDS = ("man woman person shirt table chair sky tree car bus street water white black red blue green left "
         "right front back small big sign window grass building plate dog cat kite wall").split()
URL = "https://cs.stanford.edu/people/rak248/{}/{}.jpg"


def _phrase(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 7)))


def write_vg(folder: Path, n_images: int, n_regions: int, seed: int = 0) -> list[Path]:
    """Streamed, so the generator itself stays small; key order and spacing as the real v1.2 files."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    per_image = n_regions / n_images
    image_ids = [1 + i + (i // 3) for i in range(n_images)]
    sizes = {i: (rng.choice((800, 500, 640, 1024)), rng.choice((600, 333, 480, 768))) for i in image_ids}
    region_id = 1
    with open(folder / "region_descriptions.json", "w") as f:
        f.write("[")
        for n, image_id in enumerate(image_ids):
            width, height = sizes[image_id]
            regions = []
            for _ in range(max(1, round(rng.gauss(per_image, per_image / 3)))):
                w, h = rng.randint(1, width // 2), rng.randint(1, height // 2)
                x, y = rng.randint(-2, width - w), rng.randint(0, height - h)
                phrase = _phrase(rng) + (" " if rng.random() < 0.08 else "")  # trailing spaces, as in the file
                regions.append({"region_id": region_id, "width": w, "height": h, "image_id": image_id,
                                "phrase": phrase, "y": y, "x": x})
                region_id += 1
            f.write(("" if n == 0 else ", ") + json.dumps({"regions": regions, "id": image_id}))
        f.write("]")
    images = [{"width": w, "url": URL.format("VG_100K" if i % 2 else "VG_100K_2", i), "height": h, "image_id": i,
               "coco_id": None, "flickr_id": None} for i, (w, h) in sizes.items()]
    (folder / "image_data.json").write_text(json.dumps(images))
    return [folder / "region_descriptions.json", folder / "image_data.json"]


def write_refcoco(root: Path, scale: float, seed: int = 0) -> list[Path]:
    rng = random.Random(seed)
    files = []
    for name, split_by, n_refs, n_images, n_anns, shares in REFCOCO_SETS:
        n_refs, n_images, n_anns = (max(1, int(v * scale)) for v in (n_refs, n_images, n_anns))
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        images = [{"license": 1, "file_name": f"COCO_train2014_{1000 + 7 * i:012d}.jpg", "coco_url": "",
                   "height": rng.choice((427, 480, 640)), "width": rng.choice((640, 480, 500)),
                   "date_captured": "2013-11-14 16:28:13", "flickr_url": "", "id": 1000 + 7 * i}
                  for i in range(n_images)]
        annotations = []
        for a in range(n_anns):
            image = images[a % n_images]
            w, h = rng.uniform(5, image["width"] / 2), rng.uniform(5, image["height"] / 2)
            x, y = rng.uniform(0, image["width"] - w), rng.uniform(0, image["height"] - h)
            polygon = [round(rng.uniform(x, x + w), 2) if k % 2 == 0 else round(rng.uniform(y, y + h), 2)
                       for k in range(2 * rng.randint(8, 24))]
            annotations.append({"segmentation": [polygon], "area": round(w * h, 2), "iscrowd": 0,
                                "image_id": image["id"], "bbox": [round(v, 2) for v in (x, y, w, h)],
                                "category_id": rng.randint(1, 90), "id": 100_000 + a})
        (folder / "instances.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                           "categories": [{"id": 1, "name": "person"}]}))
        splits = rng.choices(list(shares), weights=list(shares.values()), k=n_refs)
        refs, sent_id = [], 0
        for r in range(n_refs):
            ann = annotations[rng.randrange(n_anns)]
            sentences = []
            for _ in range(rng.choice((1, 2, 3, 3, 3))):
                sent = _phrase(rng)
                sentences.append({"tokens": sent.split(), "raw": sent.upper() if rng.random() < 0.1 else sent,
                                  "sent_id": sent_id, "sent": sent})
                sent_id += 1
            refs.append({"sent_ids": [s["sent_id"] for s in sentences],
                         "file_name": f"COCO_train2014_{ann['image_id']:012d}_{r % 50}.jpg", "ann_id": ann["id"],
                         "ref_id": r, "image_id": ann["image_id"], "split": splits[r], "sentences": sentences,
                         "category_id": ann["category_id"]})
        (folder / f"refs({split_by}).p").write_bytes(py2_pickle(refs))
        files += [folder / f"refs({split_by}).p", folder / "instances.json"]
    return files


def inputs(work: Path, scale: float) -> tuple[list[Path], list[Path]]:
    folder = work / "regions"
    n_images, n_regions = int(VG_IMAGES * scale), int(VG_REGIONS * scale)
    stamp = folder / f"inputs-{n_images}-{n_regions}.done"
    if not stamp.exists():
        print(f"generating inputs: VG {n_images:,} images / {n_regions:,} regions, RefCOCO/+/g x{scale} ...",
              flush=True)
        for old in folder.glob("inputs-*.done"):
            old.unlink()
        write_vg(folder / "vg", n_images, n_regions)
        write_refcoco(folder / "refcoco", scale)
        stamp.touch()
    vg = [folder / "vg/region_descriptions.json", folder / "vg/image_data.json"]
    refcoco = sorted((folder / "refcoco").rglob("*.json")) + sorted((folder / "refcoco").rglob("*.p"))
    return vg, refcoco


def row(name: str, result: dict, input_bytes: int) -> str:
    rss = result["peak_rss_bytes"]
    return f"  {name:<34} {result['wall_s']:>8.2f} s {rss / 2**20:>9,.0f} MiB   RSS/input {rss / input_bytes:>4.2f}x"


def bench(label: str, source: str, files: list[Path], work: Path, measure) -> None:
    size = sum(f.stat().st_size for f in files)
    print(f"\n{label}: {len(files)} file(s), {size / 2**20:,.0f} MiB")
    jsons = [str(f) for f in files if f.suffix == ".json"]
    pickles = [str(f) for f in files if f.suffix == ".p"]
    loads = [("(a) json.load", measure("json_load", *jsons))]
    if pickles:
        loads.append(("(a) pickle.load", measure("pickle_load", *pickles)))
    out = work / f"{source}.parquet"
    converted = measure("datamix", "convert", source, *(str(f) for f in files), "--out", str(out))
    for name, result in loads:
        print(row(name, result, size))
    print(row("(b) datamix convert", converted, size))
    load_wall = sum(r["wall_s"] for _, r in loads)
    print(f"  (b) vs (a): {load_wall / converted['wall_s']:.2f}x the speed of the plain load"
          f"{' (json + pickle)' if pickles else ''}; peak RSS {converted['peak_rss_bytes'] / size:.2f}x the input")


def main(work: Path, scale: float, measure) -> None:
    vg, refcoco = inputs(work, scale)
    bench(f"Visual Genome v1.2 x{scale}", "vg", vg, work, measure)
    bench(f"RefCOCO + RefCOCO+ + RefCOCOg x{scale}", "refcoco", refcoco, work, measure)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full train-split sizes")
    parser.add_argument("--work", type=Path, default=Path("bench_out"), help="where inputs and outputs go")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE))
    from measure import measure  # one process per job: wall time and that job's own peak RSS

    main(args.work, args.scale, measure)
