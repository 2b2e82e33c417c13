"""Benchmark of the okvqa, aokvqa, ocrvqa and textcaps converters at train-split scale (`--only academic`).

Inputs are generated in the official formats at the sizes of the real train splits:
  OCR-VQA `dataset.json`: 207,572 books keyed by ISBN strings, 5 questions each (1,037,860 QA pairs);
  A-OKVQA `aokvqa_v1p0_train.json`: 17,056 questions, 4 choices, 10 direct answers, 3 rationales each;
  TextCaps `TextCaps_0.1_train.json`: 109,765 caption records (with token lists) on 21,953 images, 5 each,
  the captions of one image spread through the file;
  OK-VQA `OpenEnded_mscoco_train2014_questions.json` + `mscoco_train2014_annotations.json`: 9,009 questions
  on 8,998 images, 10 answers each with `raw_answer`.
For each source, in separate fresh processes: (a) plain `json.load` of the same files and (c) `datamix convert`
end to end (parse, checks, merge, prompts, Parquet + ledger); wall time, peak RSS and RSS / input size.
`(0)` is `datamix convert` of a one-record file: the import time and memory under every datamix figure, which
dominate for the small sources. `--scale 0.1` runs a tenth of the sizes.
"""

from __future__ import annotations

import argparse
import json
import random
import string
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
SIZES = {"ocrvqa": 207_572, "aokvqa": 17_056, "textcaps": 21_953, "okvqa": 9_009}
WORDS = ("red blue green yellow dog cat man woman table chair sky tree car bus street water white black two "
         "three kite plate food wall sign window grass building person book cover story night river").split()
GENRES = ("Literature & Fiction", "Cookbooks, Food & Wine", "Science & Math", "Travel", "Children's Books",
          "Humor & Entertainment", "Calendars", "Law", "Religion & Spirituality", "Comics & Graphic Novels")


sys.path.insert(0, str(HERE))
from measure import measure  # noqa: E402  (one process per job: wall time and that job's own peak RSS)


def _words(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def write_ocrvqa(out_dir: Path, n_books: int, seed: int = 0) -> list[Path]:
    rng = random.Random(seed)
    books = {}
    while len(books) < n_books:
        key = f"{rng.randint(0, 10**9 - 1):09d}" + rng.choice("0123456789X")  # ISBN-10 strings, leading zeros
        title, author, genre = _words(rng, 2, 7).title(), _words(rng, 2, 2).title(), rng.choice(GENRES)
        other = rng.choice([g for g in GENRES if g != genre])
        ext = rng.choice((".jpg", ".jpg", ".jpg", ".gif", ".png"))
        books[key] = {"imageURL": f"http://ecx.images-amazon.com/images/I/{key}{ext}",
                      "questions": ["Who wrote this book?", "What is the title of this book?",
                                    "What is the genre of this book?", f"Is this book related to {genre}?",
                                    f"Is this book related to {other}?"],
                      "answers": [author, title, genre, "Yes", "No"], "title": title, "authorName": author,
                      "genre": genre, "split": rng.choice((1, 1, 1, 1, 1, 1, 1, 1, 2, 3))}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "dataset.json"
    path.write_text(json.dumps(books))
    return [path]


def write_aokvqa(out_dir: Path, n: int, seed: int = 0) -> list[Path]:
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits
    records = []
    for _ in range(n):
        choices = rng.sample(WORDS, 4)
        correct = rng.randrange(4)
        records.append({"split": "train", "image_id": rng.randint(1, 581929),
                        "question_id": "".join(rng.choice(alphabet) for _ in range(22)),
                        "question": _words(rng, 4, 10).capitalize() + "?", "choices": choices,
                        "correct_choice_idx": correct,
                        "direct_answers": [rng.choice((choices[correct], rng.choice(WORDS))) for _ in range(10)],
                        "difficult_direct_answer": rng.random() < 0.1,
                        "rationales": [_words(rng, 8, 20).capitalize() + "." for _ in range(3)]})
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "aokvqa_v1p0_train.json"
    path.write_text(json.dumps(records))
    return [path]


def write_textcaps(out_dir: Path, n_images: int, seed: int = 0) -> list[Path]:
    rng = random.Random(seed)
    ids = [f"{rng.getrandbits(64):016x}" for _ in range(n_images)]
    captions = {i: [_words(rng, 6, 14).capitalize() + "." for _ in range(5)] for i in ids}

    def tokens(caption: str) -> list[str]:
        return ["<s>", *caption.lower().rstrip(".").split(), "</s>"]

    data, cid = [], 0
    for k in range(5):  # 5 records per image, never adjacent
        for image_id in ids:
            caps = captions[image_id]
            data.append({"image_id": image_id, "image_classes": rng.sample(WORDS, 3),
                         "flickr_original_url": f"https://farm1.staticflickr.com/1/{image_id}_o.jpg",
                         "flickr_300k_url": f"https://c1.staticflickr.com/1/{image_id}_z.jpg",
                         "image_width": 1024, "image_height": rng.choice((683, 768, 1024)), "set_name": "train",
                         "image_name": image_id, "image_path": f"train/{image_id}.jpg", "caption_id": cid,
                         "caption_str": caps[k], "caption_tokens": tokens(caps[k]), "reference_strs": caps,
                         "reference_tokens": [tokens(c) for c in caps]})
            cid += 1
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "TextCaps_0.1_train.json"
    path.write_text(json.dumps({"dataset_type": "train", "dataset_name": "textcaps", "dataset_version": "0.1",
                                "data": data}))
    return [path]


def write_okvqa(out_dir: Path, n_questions: int, seed: int = 0) -> list[Path]:
    rng = random.Random(seed)
    questions, annotations = [], []
    image_id, k = 9, 0
    for i in range(n_questions):
        if k == 0 or i % 800:  # almost one question per image, as the 9,009 questions on 8,998 images
            image_id += rng.randint(1, 60)
            k = 0
        qid = image_id * 10 + k
        k += 1
        questions.append({"image_id": image_id, "question": _words(rng, 4, 9).capitalize() + "?", "question_id": qid})
        raw = [rng.choice(WORDS) for _ in range(5)]
        annotations.append({"image_id": image_id, "answer_type": "other", "question_type": rng.choice(
            ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "other")),
            "question_id": qid, "confidence": rng.randint(1, 5),
            "answers": [{"answer_id": j + 1, "raw_answer": r.capitalize(), "answer_confidence": "yes", "answer": r}
                        for j, r in enumerate(a for a in raw for _ in range(2))]})
    rng.shuffle(annotations)
    out_dir.mkdir(parents=True, exist_ok=True)
    q_path = out_dir / "OpenEnded_mscoco_train2014_questions.json"
    a_path = out_dir / "mscoco_train2014_annotations.json"
    q_path.write_text(json.dumps({"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "license": {},
                                  "data_subtype": "train2014", "questions": questions}))
    a_path.write_text(json.dumps({"info": {}, "license": {}, "data_subtype": "train2014", "annotations": annotations,
                                  "data_type": "mscoco", "question_types": {"one": "Vehicles and Transportation"}}))
    return [q_path, a_path]


WRITERS = {"ocrvqa": write_ocrvqa, "aokvqa": write_aokvqa, "textcaps": write_textcaps, "okvqa": write_okvqa}


def row(name: str, result: dict, input_bytes: int) -> str:
    rss = result["peak_rss_bytes"]
    return (f"  {name:<28} {result['wall_s']:>8.2f} s {rss / 2**20:>9,.0f} MiB   "
            f"RSS/input {rss / input_bytes:>5.2f}x")


def generate(source: str, n: int, folder: Path) -> list[Path]:
    """Inputs are written by a child process: the generator's memory would otherwise be inherited as the
    starting peak RSS of every measured process forked from this one (Linux keeps ru_maxrss across fork)."""
    stamp = folder / "done"
    if not stamp.exists():
        print(f"generating {source}: {n:,} ...", flush=True)
        subprocess.run([sys.executable, str(Path(__file__)), "--generate", source, str(n), str(folder)], check=True)
        stamp.touch()
    return sorted(folder.glob("*.json"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the train-split sizes")
    parser.add_argument("--work", type=Path, default=Path("bench_out"), help="where inputs and outputs go")
    parser.add_argument("--generate", nargs=3, metavar=("SOURCE", "N", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        source, n, folder = args.generate
        WRITERS[source](Path(folder), int(n))
        return
    tiny = generate("aokvqa", 1, args.work / "academic" / "floor")
    floor = measure("datamix", "convert", "aokvqa", str(tiny[0]), "--out", str(args.work / "floor.parquet"))
    print(f"\n(0) floor: `datamix convert` of a 1-record file: {floor['wall_s']:.2f} s, "
          f"{floor['peak_rss_bytes'] / 2**20:,.0f} MiB peak RSS (imports of polars, pyarrow, msgspec, typer)")
    units = {"ocrvqa": "books", "textcaps": "images"}
    for source, full in SIZES.items():
        n = max(1, int(full * args.scale))
        files = generate(source, n, args.work / "academic" / f"{source}-{n}")
        size = sum(f.stat().st_size for f in files)
        print(f"\n{source} ({n:,} {units.get(source, 'questions')}): {len(files)} file(s), {size / 2**20:,.1f} MiB")
        a = measure("json_load", *map(str, files))
        c = measure("datamix", "convert", source, *map(str, files), "--out", str(args.work / f"{source}.parquet"))
        print(row("(a) json.load only", a, size))
        print(row("(c) datamix convert", c, size))
        print(f"  (c) vs (a): {a['wall_s'] / c['wall_s']:.2f}x the speed of json.load; "
              f"peak RSS {c['peak_rss_bytes'] / size:.2f}x the input "
              f"({(c['peak_rss_bytes'] - floor['peak_rss_bytes']) / size:.2f}x above the floor)")


if __name__ == "__main__":
    main()
