"""Tests for datamix.demo: determinism, official file shapes, answers decided by the pixels, broken items."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, deque
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from datamix.demo import BACKGROUND, COLORS, write_demo_data


def _tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    summary = write_demo_data(root, seed=0)
    return root, summary


def _broken(summary, kind):
    return [b for b in summary["broken"] if b["kind"] == kind]


def _read_shapes(path: Path) -> list[tuple[str, str]]:
    """Find the shapes in an image from its pixels alone: connected non-background blobs, classified by how
    much of their bounding box they fill (square ~1, circle ~0.79, triangle ~0.5) and by nearest colour."""
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.int32)
    mask = np.abs(rgb - np.array(BACKGROUND)).sum(axis=2) > 90
    seen = np.zeros_like(mask)
    shapes = []
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        blob, queue = [], deque([(y0, x0)])
        seen[y0, x0] = True
        while queue:
            y, x = queue.popleft()
            blob.append((y, x))
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        if len(blob) < 20:  # JPEG speckle, never a shape (the smallest shape covers ~180 px)
            continue
        ys, xs = np.array(blob).T
        fill = len(blob) / ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1))
        shape = "square" if fill > 0.9 else "circle" if fill > 0.65 else "triangle"
        mean = rgb[ys, xs].mean(axis=0)
        color = min(COLORS, key=lambda c: float(((mean - np.array(COLORS[c])) ** 2).sum()))
        shapes.append((shape, color))
    return shapes


def test_same_seed_gives_byte_identical_tree_and_other_seed_differs(tmp_path):
    write_demo_data(tmp_path / "a", seed=7)
    write_demo_data(tmp_path / "b", seed=7)
    write_demo_data(tmp_path / "c", seed=8)
    a, b, c = (_tree_digest(tmp_path / d) for d in "abc")
    assert len(a) > 200
    assert a == b
    shared = set(a) & set(c)
    assert any(a[p] != c[p] for p in shared) or set(a) != set(c)
    assert a["vqav2/v2_mscoco_train2014_annotations.json"] != c["vqav2/v2_mscoco_train2014_annotations.json"]


def test_layout_and_summary(demo):
    root, summary = demo
    assert _load(root / "README.demo.json") == summary
    for rel in ("vqav2/v2_OpenEnded_mscoco_train2014_questions.json", "vqav2/v2_mscoco_train2014_annotations.json",
                "vqav2_unbalanced/v2_OpenEnded_mscoco_train2014_questions.json",
                "vqav2_unbalanced/v2_mscoco_train2014_annotations.json",
                "vqav2/v2_OpenEnded_mscoco_test2015_questions.json", "gqa/train_balanced_questions.json",
                "sharegpt/sharegpt_demo.json", "llava/llava_instruct_demo.json", "scenes.demo.json"):
        assert (root / rel).is_file(), rel
    counts = summary["counts"]
    n_written = sum(1 for folder in ("coco", "gqa") for _ in (root / folder).rglob("*.jpg"))
    n_missing = len(_broken(summary, "missing_image"))
    assert n_written + n_missing == counts["coco_train2017_images"] + counts["coco_test2015_images"] + counts[
        "gqa_images"] == 240
    assert all(re.fullmatch(r"\d{12}\.jpg", p.name) for p in (root / "coco/train2017").iterdir())
    kinds = Counter(b["kind"] for b in summary["broken"])
    assert {"truncated_jpeg", "empty_file", "text_as_jpg", "missing_image", "question_without_annotation",
            "empty_multiple_choice_answer", "missing_image_id"} <= set(kinds)


def test_n_images_too_small_is_refused(tmp_path):
    from datamix.errors import InputError

    with pytest.raises(InputError, match="at least 24"):
        write_demo_data(tmp_path, n_images=5)


@pytest.mark.parametrize("folder", ["vqav2", "vqav2_unbalanced"])
def test_vqav2_official_shape_and_join(demo, folder):
    root, summary = demo
    qfile = _load(root / folder / "v2_OpenEnded_mscoco_train2014_questions.json")
    afile = _load(root / folder / "v2_mscoco_train2014_annotations.json")
    assert list(qfile) == ["info", "task_type", "data_type", "license", "data_subtype", "questions"]
    assert (qfile["task_type"], qfile["data_type"], qfile["data_subtype"]) == ("Open-Ended", "mscoco", "train2014")
    assert list(afile) == ["info", "license", "data_subtype", "annotations", "data_type"]
    questions = {q["question_id"]: q for q in qfile["questions"]}
    annotations = {a["question_id"]: a for a in afile["annotations"]}
    assert len(questions) == len(qfile["questions"]) == summary["counts"]["vqav2_questions"]
    # Same question ids except the one deliberately left without an annotation.
    missing = set(questions) - set(annotations)
    assert len(missing) == 1 and not set(annotations) - set(questions)
    assert str(missing.pop()) in _broken(summary, "question_without_annotation")[0]["detail"]
    assert [a["question_id"] for a in afile["annotations"]] != [
        q["question_id"] for q in qfile["questions"] if q["question_id"] in annotations]
    disagreeing = 0
    for qid, ann in annotations.items():
        q = questions[qid]
        assert list(ann) == ["question_type", "multiple_choice_answer", "answers", "image_id", "answer_type",
                             "question_id"]
        assert isinstance(qid, int) and isinstance(q["image_id"], int) and ann["image_id"] == q["image_id"]
        assert qid // 1000 == q["image_id"] and q["question"].endswith("?")
        assert [a["answer_id"] for a in ann["answers"]] == list(range(1, 11))
        assert {a["answer_confidence"] for a in ann["answers"]} <= {"yes", "maybe", "no"}
        assert ann["answer_type"] in ("yes/no", "number", "other")
        votes = Counter(a["answer"] for a in ann["answers"])
        disagreeing += len(votes) > 1
        if ann["multiple_choice_answer"] == "":
            assert str(qid) in _broken(summary, "empty_multiple_choice_answer")[0]["detail"]
            continue
        assert votes.most_common(1)[0] == (ann["multiple_choice_answer"], max(votes.values()))
        assert votes[ann["multiple_choice_answer"]] >= 7
    assert 0.3 * len(annotations) < disagreeing < 0.95 * len(annotations)


def test_vqav2_test_split_has_questions_only(demo):
    root, _ = demo
    test = _load(root / "vqav2/v2_OpenEnded_mscoco_test2015_questions.json")
    assert test["data_subtype"] == "test2015" and test["task_type"] == "Open-Ended"
    assert 1 <= len(test["questions"]) <= 20
    assert not list(root.glob("vqav2/*test2015*annotations*"))
    for q in test["questions"]:
        assert (root / f"coco/test2015/COCO_test2015_{q['image_id']:012d}.jpg").is_file()


def test_vqav2_answers_are_decided_by_the_pixels(demo):
    root, summary = demo
    broken = {b["path"] for b in summary["broken"]}
    scenes = _load(root / "scenes.demo.json")
    questions = _load(root / "vqav2/v2_OpenEnded_mscoco_train2014_questions.json")["questions"]
    answers = {a["question_id"]: a["multiple_choice_answer"]
               for a in _load(root / "vqav2/v2_mscoco_train2014_annotations.json")["annotations"]}
    checked = Counter()
    for q in questions[:150]:
        rel = f"coco/train2017/{q['image_id']:012d}.jpg"
        if rel in broken or not answers.get(q["question_id"]):
            continue
        seen = _read_shapes(root / rel)
        # The generator's scene description and the pixels agree...
        assert sorted(seen) == sorted((s["shape"], s["color"]) for s in scenes[rel]), rel
        # ...and the consensus answer is what the pixels say.
        if q["question"] == "How many squares are there?":
            assert answers[q["question_id"]] == str(sum(s == "square" for s, _ in seen))
            checked["count"] += 1
        elif q["question"] == "What color is the circle?":
            assert answers[q["question_id"]] == [c for s, c in seen if s == "circle"][0]
            checked["color"] += 1
        elif m := re.fullmatch(r"Is there a (\w+)\?", q["question"]):
            assert answers[q["question_id"]] == ("yes" if any(s == m[1] for s, _ in seen) else "no")
            checked["yes/no"] += 1
        elif m := re.fullmatch(r"Is the circle (\w+)\?", q["question"]):
            assert answers[q["question_id"]] == ("yes" if ("circle", m[1]) in seen else "no")
            checked["yes/no"] += 1
    assert checked["count"] >= 30 and checked["color"] >= 10 and checked["yes/no"] >= 30


@pytest.mark.parametrize("seed", [0, 3])
def test_yes_share_balanced_and_unbalanced(tmp_path, seed):
    write_demo_data(tmp_path, seed=seed)

    def share(folder):
        anns = _load(tmp_path / folder / "v2_mscoco_train2014_annotations.json")["annotations"]
        yn = [a["multiple_choice_answer"] for a in anns if a["answer_type"] == "yes/no"]
        assert len(yn) >= 100 and set(yn) == {"yes", "no"}
        return yn.count("yes") / len(yn)

    assert 0.45 <= share("vqav2") <= 0.55
    assert share("vqav2_unbalanced") >= 0.65
    # Only the yes/no questions differ between the two variants.
    bal = _load(tmp_path / "vqav2/v2_OpenEnded_mscoco_train2014_questions.json")["questions"]
    unb = _load(tmp_path / "vqav2_unbalanced/v2_OpenEnded_mscoco_train2014_questions.json")["questions"]
    assert [q for q in bal if not q["question"].startswith("Is ")] == [
        q for q in unb if not q["question"].startswith("Is ")]


def test_gqa_official_shape_and_answers(demo):
    root, summary = demo
    data = _load(root / "gqa/train_balanced_questions.json")
    scenes = _load(root / "scenes.demo.json")
    assert isinstance(data, dict) and len(data) == summary["counts"]["gqa_questions"]
    keys = ["semantic", "entailed", "equivalent", "question", "imageId", "isBalanced", "groups", "answer",
            "semanticStr", "annotations", "types", "fullAnswer"]
    no_image = [qid for qid, r in data.items() if "imageId" not in r]
    assert len(no_image) == 1 and no_image[0] in _broken(summary, "missing_image_id")[0]["detail"]
    n_prefixed = 0
    for qid, rec in data.items():
        assert re.fullmatch(r"\d{8}", qid) and rec["equivalent"] == [qid]
        if qid in no_image:
            continue
        assert list(rec) == keys
        assert isinstance(rec["imageId"], str) and re.fullmatch(r"n?\d+", rec["imageId"])
        n_prefixed += rec["imageId"].startswith("n")
        assert rec["groups"]["global"] is None and set(rec["types"]) == {"detailed", "semantic", "structural"}
        assert set(rec["annotations"]) == {"answer", "question", "fullAnswer"}
        assert all(e in data for e in rec["entailed"])
        shapes = [(s["shape"], s["color"]) for s in scenes[f"gqa/images/{rec['imageId']}.jpg"]]
        if m := re.fullmatch(r"What color is the (\w+)\?", rec["question"]):
            assert [c for s, c in shapes if s == m[1]] == [rec["answer"]]
        elif m := re.fullmatch(r"Is the (\w+) (\w+)\?", rec["question"]):
            assert rec["answer"] == ("yes" if (m[1], m[2]) in shapes else "no")
        elif m := re.fullmatch(r"Which shape is (\w+)\?", rec["question"]):
            assert [s for s, c in shapes if c == m[1]] == [rec["answer"]]
        else:
            pytest.fail(f"unexpected question {rec['question']!r}")
    assert n_prefixed >= 5


def test_sharegpt_shape_and_quirks(demo):
    root, _ = demo
    records = _load(root / "sharegpt/sharegpt_demo.json")
    assert isinstance(records, list)
    with_id = [r for r in records if "id" in r]
    assert len(records) - len(with_id) == 1
    assert all(re.fullmatch(r"[A-Za-z0-9]{7}_\d+", r["id"]) for r in with_id)
    assert {r.get("model") for r in records} >= {"gpt4", "", None}
    convs = [r["conversations"] for r in records]
    roles = [[t["from"] for t in c] for c in convs]
    assert any(c[0] == {"from": "gpt", "value": "\u200b"} for c in convs)
    assert any(c[0] == {"from": "gpt", "value": "EmptyMarkdownContent"} for c in convs)
    assert any(set(r) == {"user", "assistant"} for r in roles)
    assert any(("gpt", "gpt") in zip(r, r[1:]) for r in roles)
    assert any(r == ["human"] for r in roles)
    assert any(len(r) > 1 and r[-1] == "human" for r in roles)
    assert any(r[0] == "system" for r in roles)
    # The arithmetic answers are right, so a trained model can be checked against them.
    n_sums = 0
    for c in convs:
        for q, a in zip(c, c[1:]):
            if m := re.fullmatch(r"What is (\d+) ([-+*]) (\d+)\?", q["value"]):
                x, op, y = int(m[1]), m[2], int(m[3])
                assert a["value"] == f"{x} {op} {y} = {x + y if op == '+' else x - y if op == '-' else x * y}."
                n_sums += 1
    assert n_sums >= 10


def test_llava_shape_and_quirks(demo):
    root, summary = demo
    records = _load(root / "llava/llava_instruct_demo.json")
    assert isinstance(records, list) and len(records) == summary["counts"]["llava_records"]
    missing = {Path(b["path"]).name for b in _broken(summary, "missing_image")}
    starts = ends = no_token = int_ids = 0
    for rec in records:
        assert list(rec) == ["id", "image", "conversations"]
        int_ids += isinstance(rec["id"], int)
        assert rec["image"] == f"{int(rec['id']):012d}.jpg"
        assert (root / "coco/train2017" / rec["image"]).is_file() or rec["image"] in missing
        conv = rec["conversations"]
        assert [t["from"] for t in conv] == ["human", "gpt"] * (len(conv) // 2) and len(conv) >= 4
        first = conv[0]["value"]
        starts += first.startswith("<image>\n")
        ends += first.endswith("\n<image>")
        no_token += "<image>" not in first
        assert all("<image>" not in t["value"] for t in conv[1:])
    assert int_ids == 1 and no_token == 1 and starts >= 5 and ends >= 5
    assert any(rec["image"] in missing for rec in records)


def test_broken_images_really_are_broken(demo):
    root, summary = demo
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    broken = {b["path"]: b["kind"] for b in summary["broken"] if b["path"].endswith(".jpg")}
    assert Counter(broken.values())["truncated_jpeg"] >= 2
    for rel, kind in broken.items():
        path = root / rel
        if kind == "missing_image":
            assert not path.exists()
            continue
        with pytest.raises(OSError):  # UnidentifiedImageError is an OSError too
            with Image.open(path) as im:
                im.load()
    for path in root.rglob("*.jpg"):  # everything else decodes
        if path.relative_to(root).as_posix() not in broken:
            with Image.open(path) as im:
                im.load()
                # OCR-VQA covers keep LLaVA's quirk: GIF and PNG files under .jpg names
                assert (im.format, im.mode) == ("JPEG", "RGB") or path.parts[-3] == "ocr_vqa"
