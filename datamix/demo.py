"""Write a small raw dataset in the official formats of VQAv2, GQA, ShareGPT, LLaVA, OK-VQA, A-OKVQA,
OCR-VQA, TextCaps, RefCOCO and Visual Genome.

The images are synthetic: one to four flat shapes (circle, square, triangle) in distinct colours on a
light background, each shape alone in a cell of a 3x3 grid so that counting is unambiguous. Every
answer is computed from the scene that was drawn, so a model trained on a demo mix can be checked, and
`scenes.demo.json` keeps each scene for that purpose. The files follow the shapes of the real releases
(VQAv2 questions/annotations pair, GQA dict keyed by zero-padded question id, ShareGPT list,
LLaVA-Instruct list; OK-VQA pair with `raw_answer`s and knowledge categories on the COCO images; A-OKVQA list
with a test record; OCR-VQA `dataset.json` keyed by ISBN strings with cover images under LLaVA's
`ocr_vqa/images/<key>.jpg`, GIF and PNG covers included under .jpg names; TextCaps captions spread through the
file for images under `textvqa/train_images/`, which show a shape and a number) with the quirks converters
must survive, plus a few deliberately broken items, all listed in `README.demo.json`.

Same seed -> byte-identical files: each part draws from its own local `random.Random` stream (so one
part's changes do not shift another's), JSON keys are written in construction order, and JPEGs are
encoded by Pillow with fixed parameters.
"""

from __future__ import annotations

import io
import json
import pickle
import random
from collections import Counter
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from datamix.errors import InputError

SIZE = 96
CELL = SIZE // 3
BACKGROUND = (240, 238, 230)
COLORS = {"red": (215, 40, 40), "green": (40, 160, 70), "blue": (40, 80, 210),
          "yellow": (235, 195, 30), "purple": (140, 60, 170)}
SHAPES = ("circle", "square", "triangle")
# What a careless annotator might say instead of the true colour (VQAv2 annotators disagree).
NEAR_COLOR = {"red": "orange", "green": "teal", "blue": "navy", "yellow": "gold", "purple": "violet"}
NUMBER_WORDS = ("no", "one", "two", "three", "four")
VQA_INFO = {"year": 2017, "version": "2.0", "description": "datamix demo data in the VQA v2.0 format",
            "contributor": "datamix", "url": "https://visualqa.org", "date_created": "2017-04-26 17:07:13"}
VQA_LICENSE = {"url": "http://creativecommons.org/licenses/by/4.0/",
               "name": "Creative Commons Attribution 4.0 International License"}
Scene = list[dict[str, Any]]


def _stream(seed: int, name: str) -> random.Random:
    # String seeds are hashed with SHA-512 by `random`, so streams are stable across runs and platforms.
    return random.Random(f"datamix-demo:{seed}:{name}")


# ---------------------------------------------------------------- scenes and images

def make_scene(rng: random.Random) -> Scene:
    """1-4 shapes, one per grid cell, at most one circle (so "the circle" always names one shape)."""
    scene: Scene = []
    for cell in sorted(rng.sample(range(9), rng.randint(1, 4))):
        kinds = SHAPES[1:] if any(s["shape"] == "circle" for s in scene) else SHAPES
        half = rng.randint(9, 12)
        slack = CELL // 2 - half - 2  # keeps >= 4 px between shapes in neighbouring cells
        cx = (cell % 3) * CELL + CELL // 2 + rng.randint(-slack, slack)
        cy = (cell // 3) * CELL + CELL // 2 + rng.randint(-slack, slack)
        scene.append({"shape": rng.choice(kinds), "color": rng.choice(list(COLORS)), "cell": cell,
                      "box": [cx - half, cy - half, cx + half, cy + half]})
    return scene


def jpeg_bytes(scene: Scene, width: int = SIZE, height: int = SIZE) -> bytes:
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for s in scene:
        x0, y0, x1, y1 = s["box"]
        fill = COLORS[s["color"]]
        if s["shape"] == "circle":
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif s["shape"] == "square":
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        else:
            draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=fill)
    buf = io.BytesIO()
    # 4:4:4 chroma keeps the flat colours exact away from the edges; no optimize/progressive passes.
    image.save(buf, "JPEG", quality=92, subsampling=0)
    return buf.getvalue()


def _only(scene: Scene, **match: str) -> dict | None:
    hits = [s for s in scene if all(s[k] == v for k, v in match.items())]
    return hits[0] if len(hits) == 1 else None


def _count(scene: Scene, shape: str) -> int:
    return sum(s["shape"] == shape for s in scene)


def _describe(scene: Scene) -> str:
    parts = [f"a {s['color']} {s['shape']}" for s in scene]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


# ---------------------------------------------------------------- VQAv2

def _yes_no_question(rng: random.Random, scene: Scene, want_yes: bool) -> tuple[str, str, str]:
    """Pick a yes/no question whose true answer is `want_yes`; both kinds always exist for a scene."""
    cands = [(f"Is there a {shape}?", _count(scene, shape) > 0, "is there a") for shape in SHAPES]
    circle = _only(scene, shape="circle")
    if circle:
        cands += [(f"Is the circle {c}?", circle["color"] == c, "is the") for c in COLORS]
    q, truth, qtype = rng.choice([c for c in cands if c[1] == want_yes])
    return q, "yes" if truth else "no", qtype


def _wrong_answer(rng: random.Random, truth: str, answer_type: str) -> str:
    if answer_type == "yes/no":
        return "no" if truth == "yes" else "yes"
    if answer_type == "number":
        return str(int(truth) + 1 if truth == "0" or rng.random() < 0.5 else int(truth) - 1)
    return NEAR_COLOR[truth]


def _annotate(rng: random.Random, truth: str, answer_type: str) -> list[dict[str, Any]]:
    """10 answers: at least 7 agree with the truth, 0-3 are near misses typed with less confidence."""
    n_wrong = rng.choice((0, 1, 1, 2, 3))
    pairs = [(truth, "yes" if rng.random() < 0.9 else "maybe") for _ in range(10 - n_wrong)]
    pairs += [(_wrong_answer(rng, truth, answer_type), rng.choice(("maybe", "no"))) for _ in range(n_wrong)]
    rng.shuffle(pairs)
    return [{"answer": a, "answer_confidence": c, "answer_id": i + 1} for i, (a, c) in enumerate(pairs)]


def _vqa_pair(seed: int, scenes: dict[int, Scene], p_yes: float) -> tuple[list, list]:
    """Questions and annotations; only the yes/no questions depend on `p_yes`."""
    yn = _stream(seed, f"vqav2-yes-no-{p_yes}")
    n_yes = round(len(scenes) * p_yes)  # exact share, so "balanced" really is 50% yes
    targets = [True] * n_yes + [False] * (len(scenes) - n_yes)
    yn.shuffle(targets)
    questions, annotations = [], []
    for (image_id, scene), want_yes in zip(scenes.items(), targets):
        rng = _stream(seed, f"vqav2-{image_id}")
        asked = [("How many squares are there?", str(_count(scene, "square")), "number", "how many", rng)]
        circle = _only(scene, shape="circle")
        if circle:
            asked.append(("What color is the circle?", circle["color"], "other", "what color is the", rng))
        q, truth, qtype = _yes_no_question(yn, scene, want_yes)
        asked.append((q, truth, "yes/no", qtype, yn))
        for k, (question, truth, answer_type, qtype, r) in enumerate(asked):
            qid = image_id * 1000 + k
            answers = _annotate(r, truth, answer_type)
            majority = Counter(a["answer"] for a in answers).most_common(1)[0][0]
            questions.append({"image_id": image_id, "question": question, "question_id": qid})
            annotations.append({"question_type": qtype, "multiple_choice_answer": majority,
                                "answers": answers, "image_id": image_id, "answer_type": answer_type,
                                "question_id": qid})
    _stream(seed, "vqav2-order").shuffle(annotations)  # the join must go through question_id
    return questions, annotations


def _vqa_questions_file(subtype: str, questions: list) -> dict:
    return {"info": VQA_INFO, "task_type": "Open-Ended", "data_type": "mscoco", "license": VQA_LICENSE,
            "data_subtype": subtype, "questions": questions}


def _vqa_annotations_file(annotations: list) -> dict:
    return {"info": VQA_INFO, "license": VQA_LICENSE, "data_subtype": "train2014",
            "annotations": annotations, "data_type": "mscoco"}


# ---------------------------------------------------------------- GQA

def _gqa_candidates(rng: random.Random, scene: Scene, obj_ids: list[str]) -> list[dict]:
    """Question templates that have exactly one right answer for this scene."""
    out = []
    for s, oid in zip(scene, obj_ids):
        shape, color = s["shape"], s["color"]
        if _only(scene, shape=shape):
            asked = color if rng.random() < 0.5 else rng.choice([c for c in COLORS if c != color])
            yes = asked == color
            out.append({"question": f"Is the {shape} {asked}?", "answer": "yes" if yes else "no", "obj": oid,
                        "fullAnswer": f"Yes, the {shape} is {asked}." if yes else f"No, the {shape} is {color}.",
                        "semantic": [("select", [], f"{shape} ({oid})"), ("verify color", [0], asked)],
                        "local": f"06-{shape}_{asked}", "types": ("verifyAttr", "attr", "verify"),
                        "q_pos": "2", "a_pos": "2"})
            out.append({"question": f"What color is the {shape}?", "answer": color, "obj": oid,
                        "fullAnswer": f"The {shape} is {color}.",
                        "semantic": [("select", [], f"{shape} ({oid})"), ("query", [0], "color")],
                        "local": f"10q-{shape}_color", "types": ("queryAttr", "attr", "query"),
                        "q_pos": "4", "a_pos": "1"})
        if _only(scene, color=color):
            out.append({"question": f"Which shape is {color}?", "answer": shape, "obj": oid,
                        "fullAnswer": f"The {color} shape is a {shape}.",
                        "semantic": [("select", [], f"shape ({oid})"), ("filter color", [0], color),
                                     ("query", [1], "name")],
                        "local": f"15-{color}_shape", "types": ("categoryThat", "cat", "query"),
                        "q_pos": "0:2", "a_pos": "5"})
    return out


def _gqa_record(qid: str, image_id: str, cand: dict, entailed: list[str]) -> dict:
    ops = [{"operation": op, "dependencies": deps, "argument": arg} for op, deps, arg in cand["semantic"]]
    sem_str = "->".join(f"{op}: {arg}" + (f" {deps}" if deps else "") for op, deps, arg in cand["semantic"])
    detailed, semantic, structural = cand["types"]
    return {"semantic": ops, "entailed": entailed, "equivalent": [qid], "question": cand["question"],
            "imageId": image_id, "isBalanced": True, "groups": {"global": None, "local": cand["local"]},
            "answer": cand["answer"], "semanticStr": sem_str,
            "annotations": {"answer": {}, "question": {cand["q_pos"]: cand["obj"]},
                            "fullAnswer": {cand["a_pos"]: cand["obj"]}},
            "types": {"detailed": detailed, "semantic": semantic, "structural": structural},
            "fullAnswer": cand["fullAnswer"]}


def _gqa_questions(seed: int, scenes: dict[str, Scene]) -> dict[str, dict]:
    rng = _stream(seed, "gqa")
    records, next_id = {}, rng.randint(100000, 3000000)
    for image_id, scene in scenes.items():
        obj_ids = [str(rng.randint(1000000, 3999999)) for _ in scene]
        cands = _gqa_candidates(rng, scene, obj_ids)
        chosen = rng.sample(cands, min(3, len(cands)))
        qids = []
        for _ in chosen:
            qids.append(f"{next_id:08d}")  # zero-padded string ids: never cast them to int
            next_id += rng.randint(1, 9)
        for qid, cand in zip(qids, chosen):
            # Questions about the same object entail each other, as in the real file.
            entailed = [q for q, c in zip(qids, chosen) if q != qid and c["obj"] == cand["obj"]]
            records[qid] = _gqa_record(qid, image_id, cand, entailed)
    return records


def _gqa_image_ids(rng: random.Random, n: int) -> list[str]:
    ids: list[str] = []
    while len(ids) < n:  # about a quarter "n"-prefixed, like the real ids n1..n581923
        new = f"n{rng.randint(1, 581923)}" if rng.random() < 0.25 else str(rng.randint(1, 2417997))
        if new not in ids:
            ids.append(new)
    return ids


# ---------------------------------------------------------------- ShareGPT

COLOR_MIXES = (("blue", "yellow", "green"), ("red", "yellow", "orange"), ("red", "blue", "purple"),
               ("red", "white", "pink"), ("black", "white", "grey"))


def _chat_exchange(rng: random.Random) -> list[dict[str, str]]:
    """One checkable question/answer pair: arithmetic or a colour-mixing fact."""
    if rng.random() < 0.6:
        a, b = rng.randint(2, 40), rng.randint(2, 40)
        op, value = rng.choice((("+", a + b), ("*", a * b), ("-", a - b)))
        q, ans = f"What is {a} {op} {b}?", f"{a} {op} {b} = {value}."
    else:
        x, y, mix = rng.choice(COLOR_MIXES)
        q, ans = f"What colour do you get when you mix {x} and {y} paint?", f"Mixing {x} and {y} gives {mix}."
    return [{"from": "human", "value": q}, {"from": "gpt", "value": ans}]


def _sharegpt_records(seed: int, n: int) -> tuple[list[dict], list[str]]:
    rng = _stream(seed, "sharegpt")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

    def record(turns: list[dict[str, str]]) -> dict:
        base = "".join(rng.choice(alphabet) for _ in range(7))
        rec: dict[str, Any] = {"id": f"{base}_{rng.choice((0, 0, 0, 1, 2))}"}
        model = rng.choice(("gpt4", "", None))  # None: no `model` key at all (schema drift)
        if model is not None:
            rec["model"] = model
        rec["conversations"] = turns
        return rec

    records = [record([t for _ in range(rng.randint(1, 3)) for t in _chat_exchange(rng)]) for _ in range(n)]
    ex = _chat_exchange
    quirky = {  # the ShareGPT quirks seen in the wild: what each record exercises
        "leading gpt turn holding U+200B": [{"from": "gpt", "value": "\u200b"}] + ex(rng),
        "leading gpt turn holding EmptyMarkdownContent": [{"from": "gpt", "value": "EmptyMarkdownContent"}] + ex(rng),
        "user/assistant role names": [{"from": r, "value": t["value"]}
                                      for r, t in zip(("user", "assistant"), ex(rng))],
        "two consecutive gpt turns": ex(rng) + [{"from": "gpt", "value": "Is there anything else?"}],
        "trailing human turn": ex(rng) + ex(rng)[:1],
        "only a human turn (no usable exchange)": ex(rng)[:1],
        "leading system turn": [{"from": "system", "value": "You are a helpful assistant."}] + ex(rng),
    }
    notes = []
    for what, turns in quirky.items():
        rec = record(turns)
        records.insert(rng.randint(0, len(records)), rec)
        notes.append(f"{rec['id']}: {what}")
    no_id = record(ex(rng))
    del no_id["id"]
    records.insert(rng.randint(0, len(records)), no_id)
    notes.append(f"record #{records.index(no_id)}: no id")
    return records, notes


# ---------------------------------------------------------------- LLaVA-Instruct

def _position(s: dict) -> str:
    row, col = divmod(s["cell"], 3)
    if (row, col) == (1, 1):
        return "in the middle"
    return "at the " + " ".join(w for w in (("top", "", "bottom")[row], ("left", "", "right")[col]) if w)


def _llava_record(rng: random.Random, image_id: int, scene: Scene, *, with_token: bool = True) -> dict:
    n_sq = _count(scene, "square")
    turns = [("What shapes can you see in this image?",
              f"I can see {NUMBER_WORDS[len(scene)]} shape{'s' * (len(scene) > 1)}: {_describe(scene)}."),
             ("How many squares are there?",
              "There are no squares." if n_sq == 0 else
              f"There {'is' if n_sq == 1 else 'are'} {NUMBER_WORDS[n_sq]} square{'s' * (n_sq > 1)}.")]
    circle = _only(scene, shape="circle")
    s = rng.choice(scene)
    turns.append(("What color is the circle?", f"The circle is {circle['color']}.") if circle else
                 (f"Where is the {s['color']} {s['shape']}?", f"It is {_position(s)} of the image."))
    turns = turns[:rng.randint(2, 3)]
    first = turns[0][0]
    if with_token:  # LLaVA-Instruct has the token at the start or at the end about half and half
        first = f"<image>\n{first}" if rng.random() < 0.5 else f"{first}\n<image>"
    conv = []
    for i, (q, a) in enumerate(turns):
        conv += [{"from": "human", "value": first if i == 0 else q}, {"from": "gpt", "value": a}]
    return {"id": f"{image_id:012d}", "image": f"{image_id:012d}.jpg", "conversations": conv}


def _llava_records(seed: int, scenes: dict[int, Scene], image_ids: list[int]) -> tuple[list[dict], list[str]]:
    rng = _stream(seed, "llava")
    records = [_llava_record(rng, i, scenes[i]) for i in image_ids]
    int_id, no_token = rng.sample(range(len(records)), 2)
    records[int_id]["id"] = image_ids[int_id]  # mixed id types break pyarrow (datasets#7322)
    records[no_token] = _llava_record(rng, image_ids[no_token], scenes[image_ids[no_token]], with_token=False)
    return records, [f"record #{int_id}: int id {image_ids[int_id]}",
                     f"record #{no_token}: image key but no <image> token (must be rejected)"]


# ---------------------------------------------------------------- RefCOCO and Visual Genome (region-level)

VG_URL = "https://cs.stanford.edu/people/rak248/{}/{}.jpg"
VG_CANVASES = ((128, 96), (96, 128), (96, 96), (160, 96))  # wide, tall and square: the box frames differ


def _expressions(scene: Scene, s: dict) -> list[str]:
    """Ways to refer to shape `s` that name it alone in its scene (colour and shape, else its position too)."""
    name = f"{s['color']} {s['shape']}"
    unique = _only(scene, shape=s["shape"], color=s["color"]) is not None
    base = [name, f"the {name}"] if unique else []
    return base + [f"{name} {_position(s)}"]


def _refcoco_files(seed: int, coco: dict[int, Scene]) -> tuple[list[dict], dict, list[dict], list[str]]:
    """refs(unc).p records and instances.json for about half of the COCO images: one ref per shape."""
    rng = _stream(seed, "refcoco")
    ids = sorted(rng.sample(sorted(coco), max(4, len(coco) // 2)))
    images, annotations, refs = [], [], []
    ann_id, sent_id = 1_700_000 + rng.randint(0, 9999), 0
    for image_id in ids:
        images.append({"license": 1, "file_name": f"COCO_train2014_{image_id:012d}.jpg", "coco_url": "",
                       "height": SIZE, "width": SIZE, "date_captured": "2013-11-14 16:28:13", "flickr_url": "",
                       "id": image_id})
        for s in coco[image_id]:
            x0, y0, x1, y1 = s["box"]
            annotations.append({"segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]], "area": (x1 - x0) * (y1 - y0),
                                "iscrowd": 0, "image_id": image_id, "bbox": [x0, y0, x1 - x0, y1 - y0],
                                "category_id": 1, "id": ann_id})
            texts = rng.sample(_expressions(coco[image_id], s), rng.randint(1, len(_expressions(coco[image_id], s))))
            sentences = [{"tokens": t.split(), "raw": t.upper() if rng.random() < 0.2 else t, "sent_id": sent_id + k,
                          "sent": t} for k, t in enumerate(texts)]
            sent_id += len(sentences)
            split = rng.choices(("train", "val", "testA", "testB"), (0.8, 0.08, 0.06, 0.06))[0]
            refs.append({"sent_ids": [x["sent_id"] for x in sentences],
                         "file_name": f"COCO_train2014_{image_id:012d}_{len(refs) % 90}.jpg", "ann_id": ann_id,
                         "ref_id": len(refs), "image_id": image_id, "split": split, "sentences": sentences,
                         "category_id": 1})
            ann_id += 1
    refs[1]["ann_id"] = ann_id + 1000  # a ref whose annotation is not in instances.json
    annotations[3]["bbox"][2] = 0  # a zero-width box (refs[3] points at it)
    refs[1]["split"] = refs[3]["split"] = "train"  # so that they reach the converter's checks
    instances = {"info": {"description": "datamix demo data in the refer (RefCOCO) instances.json format"},
                 "images": images, "licenses": [{"id": 1, "name": "demo"}], "annotations": annotations,
                 "categories": [{"supercategory": "shape", "id": 1, "name": "shape"}]}
    broken = [{"path": "refcoco/refs(unc).p", "kind": "refcoco_ref_without_annotation",
               "detail": f"ref {refs[1]['ref_id']} names ann_id {refs[1]['ann_id']}, not in instances.json"},
              {"path": "refcoco/instances.json", "kind": "refcoco_degenerate_box",
               "detail": f"annotation {annotations[3]['id']} has width 0"}]
    splits = Counter(r["split"] for r in refs)
    quirks = [f"splits: {dict(sorted(splits.items()))} (only train is converted by default)",
              "file_name carries an annotation suffix (COCO_train2014_<id>_<k>.jpg)", "some raw sentences upper-case"]
    return refs, instances, broken, quirks


def _vg_files(seed: int, n: int) -> tuple[list[dict], list[dict], dict[str, Scene], list[dict], list[str]]:
    """region_descriptions.json, image_data.json and the scenes of `n` VG images on non-square canvases."""
    rng = _stream(seed, "vg")
    scene_rng = _stream(seed, "vg-scenes")
    entries, image_data, scenes = [], [], {}
    region_id = 1000 + rng.randint(0, 999)
    for k in range(n):
        image_id = 1 + k * 3 + rng.randint(0, 2)
        width, height = VG_CANVASES[k % len(VG_CANVASES)]
        dx, dy = rng.randint(0, width - SIZE), rng.randint(0, height - SIZE)
        scene = [{**s, "box": [s["box"][0] + dx, s["box"][1] + dy, s["box"][2] + dx, s["box"][3] + dy]}
                 for s in make_scene(scene_rng)]
        folder = "VG_100K" if rng.random() < 0.6 else "VG_100K_2"
        scenes[f"vg/{folder}/{image_id}.jpg"] = scene
        image_data.append({"width": width, "url": VG_URL.format(folder, image_id), "height": height,
                           "image_id": image_id, "coco_id": None, "flickr_id": None})
        regions = []
        for s in scene:
            x0, y0, x1, y1 = s["box"]
            for text in rng.sample(_expressions(scene, s), min(2, len(_expressions(scene, s)))):
                regions.append({"region_id": region_id, "width": x1 - x0, "height": y1 - y0, "image_id": image_id,
                                "phrase": text + (" " if rng.random() < 0.1 else ""), "y": y0, "x": x0})
                region_id += 1
        regions.append({"region_id": region_id, "width": width, "height": height, "image_id": image_id,
                        "phrase": "shapes on a light background", "y": 0, "x": 0})
        region_id += 1
        entries.append({"regions": regions, "id": image_id})
    entries[0]["regions"][0]["x"] -= entries[0]["regions"][0]["x"] + 1  # x = -1, as in the real file: clipped
    entries[1]["regions"].append({**entries[1]["regions"][0], "region_id": region_id, "width": 0})  # degenerate
    entries[2]["regions"].append({**entries[2]["regions"][-1], "region_id": region_id + 1})  # repeated phrase
    orphan = entries[3]["id"]
    image_data = [d for d in image_data if d["image_id"] != orphan]  # an image missing from image_data.json
    scenes = {p: sc for p, sc in scenes.items() if Path(p).stem != str(orphan)}
    broken = [{"path": "vg/region_descriptions.json", "kind": "vg_image_without_image_data",
               "detail": f"image {orphan} has regions but no image_data.json record (and no file)"},
              {"path": "vg/region_descriptions.json", "kind": "vg_degenerate_region",
               "detail": f"region {region_id} of image {entries[1]['id']} has width 0"}]
    quirks = [f"image {entries[0]['id']}: a region with x = -1", f"image {entries[2]['id']}: a phrase given twice",
              "about 10% of phrases end with a space", "images in VG_100K/ and VG_100K_2/ (from image_data url)",
              "wide, tall and square images"]
    return entries, image_data, scenes, broken, quirks


def _vg_jpeg(scene: Scene, width: int, height: int) -> bytes:
    """A VG-style image: the shapes drawn on a `width` x `height` canvas (boxes already in canvas pixels)."""
    return jpeg_bytes(scene, width, height)


def _region_sources(out_dir: Path, seed: int, coco: dict[int, Scene], n_images: int, files: dict[str, bytes],
                    paths: dict[str, Scene]) -> dict:
    """Write RefCOCO (refs(unc).p + instances.json) and VG (region_descriptions.json + image_data.json);
    add the VG images to `files` and their scenes to `paths`."""
    refs, instances, broken, refcoco_quirks = _refcoco_files(seed, coco)
    (out_dir / "refcoco").mkdir(parents=True, exist_ok=True)
    with open(out_dir / "refcoco/refs(unc).p", "wb") as f:
        pickle.dump(refs, f, protocol=2)  # plain lists, dicts, strings and numbers: no global in the file
    _write_json(out_dir / "refcoco/instances.json", instances)
    entries, image_data, scenes, vg_broken, vg_quirks = _vg_files(seed, max(6, n_images // 6))
    _write_json(out_dir / "vg/region_descriptions.json", entries)
    _write_json(out_dir / "vg/image_data.json", image_data)
    sizes = {d["image_id"]: (d["width"], d["height"]) for d in image_data}
    for path, scene in scenes.items():
        files[path] = _vg_jpeg(scene, *sizes[int(Path(path).stem)])
    paths.update(scenes)
    return {"counts": {"refcoco_refs": len(refs), "refcoco_images": len(instances["images"]),
                       "vg_images": len(scenes), "vg_regions": sum(len(e["regions"]) for e in entries)},
            "broken": broken + vg_broken, "quirks": {"refcoco": refcoco_quirks, "vg": vg_quirks}}
# ---------------------------------------------------------------- OK-VQA and A-OKVQA (on the COCO images)

OKVQA_TYPES = {"one": "Vehicles and Transportation", "two": "Brands, Companies and Products",
               "three": "Objects, Material and Clothing", "four": "Sports and Recreation", "five": "Cooking and Food",
               "six": "Geography, History, Language and Culture", "seven": "People and Everyday life",
               "eight": "Plants and Animals", "nine": "Science and Technology", "ten": "Weather and Climate",
               "other": "Other"}
OKVQA_INFO = {"year": 2019, "version": "1.1", "description": "datamix demo data in the OK-VQA v1.1 format",
              "contributor": "datamix", "url": "https://okvqa.allenai.org", "date_created": "2019-05-31"}
CORNERS = {"circle": "0", "square": "4", "triangle": "3"}


def _okvqa_pair(seed: int, scenes: dict[int, Scene]) -> tuple[list, list]:
    """One or two questions per image; 5 answers each given twice, `raw_answer` as typed (capitalised)."""
    rng = _stream(seed, "okvqa")
    questions, annotations = [], []
    for image_id, scene in scenes.items():
        s = rng.choice(scene)
        asked = [(f"How many corners does the {s['color']} shape have?", CORNERS[s["shape"]], "nine")]
        if _only(scene, shape="circle"):
            asked.append(("Which shape in the picture could roll like a wheel?", "circle", "one"))
        for k, (question, truth, qtype) in enumerate(asked):
            qid = image_id * 10 + k
            raw = [truth.capitalize() if rng.random() < 0.4 else truth for _ in range(5)]
            entries = [(r, truth) for r in raw for _ in range(2)]
            questions.append({"image_id": image_id, "question": question, "question_id": qid})
            annotations.append({"image_id": image_id, "answer_type": "other", "question_type": qtype,
                                "question_id": qid, "confidence": rng.randint(1, 5),
                                "answers": [{"answer_id": i + 1, "raw_answer": r, "answer_confidence": "yes",
                                             "answer": a} for i, (r, a) in enumerate(entries)]})
    return questions, annotations


def _aokvqa_records(seed: int, scenes: dict[int, Scene]) -> list[dict]:
    """Colour questions as multiple choice: 4 colours, the right one at a random index, 10 direct answers."""
    rng = _stream(seed, "aokvqa")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"  # the ids' shortuuid alphabet
    records = []
    for image_id, scene in scenes.items():
        s = rng.choice(scene)
        choices = [s["color"]] + rng.sample([c for c in COLORS if c != s["color"]], 3)
        rng.shuffle(choices)
        direct = [s["color"]] * rng.randint(7, 10)
        direct += [NEAR_COLOR[s["color"]]] * (10 - len(direct))
        rng.shuffle(direct)
        records.append({"split": "train", "image_id": image_id,
                        "question_id": "".join(rng.choice(alphabet) for _ in range(22)),
                        "question": f"What color is the {s['shape']} {_position(s)}?", "choices": choices,
                        "correct_choice_idx": choices.index(s["color"]), "direct_answers": direct,
                        "difficult_direct_answer": False,
                        "rationales": [f"The {s['shape']} is painted {s['color']}.",
                                       f"Its fill is {s['color']}.", f"The {s['shape']} looks {s['color']}."]})
    return records


# ---------------------------------------------------------------- OCR-VQA (book covers)

GENRES = {"Cookbooks, Food & Wine": (200, 90, 40), "Science & Math": (40, 90, 160), "Travel": (40, 140, 90),
          "Humor & Entertainment": (220, 180, 40), "Children's Books": (170, 70, 150)}
TITLE_WORDS = ("Red", "Quiet", "River", "Garden", "Stone", "Winter", "Atlas", "Kitchen", "Numbers", "Night")
AUTHORS = ("Ada Moreno", "Ben Okafor", "Chen Li", "Dana Smit", "Eli Novak", "Farah Aziz")


def _isbn_keys(rng: random.Random, n: int) -> list[str]:
    """ISBN-10-like string keys: some with leading zeros, some ending in X (never cast them to int)."""
    keys: list[str] = []
    while len(keys) < n:
        digits = f"{rng.randint(0, 10**9 - 1):09d}"
        last = "X" if rng.random() < 0.2 else str(rng.randint(0, 9))
        key = ("0" + digits[1:] if rng.random() < 0.3 else digits) + last
        if key not in keys:
            keys.append(key)
    return keys


def cover_bytes(title: str, author: str, genre: str, fmt: str) -> bytes:
    """A book cover in its genre's colour with the title and author written on it."""
    image = Image.new("RGB", (80, 120), GENRES[genre])
    draw = ImageDraw.Draw(image)
    draw.rectangle((4, 4, 75, 115), outline=(250, 250, 250))
    for i, word in enumerate(title.split()):
        draw.text((8, 12 + 12 * i), word, fill=(255, 255, 255))
    draw.text((8, 100), author.split()[-1], fill=(255, 255, 255))
    buf = io.BytesIO()
    if fmt == "GIF":
        image.convert("P", palette=Image.Palette.ADAPTIVE, colors=32).save(buf, "GIF")
    elif fmt == "PNG":
        image.save(buf, "PNG", compress_level=6)
    else:
        image.save(buf, "JPEG", quality=92, subsampling=0)
    return buf.getvalue()


def _ocrvqa_books(seed: int, n: int) -> tuple[dict[str, dict], dict[str, bytes], list[str]]:
    """`dataset.json` entries and their covers: GIF and PNG covers are saved under `.jpg`, as LLaVA's download."""
    rng = _stream(seed, "ocrvqa")
    books, images = {}, {}
    for key in _isbn_keys(rng, n):
        genre = rng.choice(list(GENRES))
        title = " ".join(rng.sample(TITLE_WORDS, 2))
        author = rng.choice(AUTHORS)
        other = rng.choice([g for g in GENRES if g != genre])
        ext = rng.choice((".jpg", ".jpg", ".jpg", ".gif", ".png"))
        qa = [("Who wrote this book?", author), ("What is the title of this book?", title),
              ("What is the genre of this book?", genre),
              (f"Is this book related to {genre}?", "Yes"), (f"Is this book related to {other}?", "No")]
        books[key] = {"imageURL": f"http://ecx.images-amazon.com/images/I/{key}{ext}",
                      "questions": [q for q, _ in qa], "answers": [a for _, a in qa], "title": title,
                      "authorName": author, "genre": genre, "split": rng.choice((1, 1, 1, 2, 3))}
        fmt = {".gif": "GIF", ".png": "PNG"}.get(ext, "JPEG")
        images[f"ocr_vqa/images/{key}.jpg"] = cover_bytes(title, author, genre, fmt)
    unknown = rng.choice(sorted(books))
    books[unknown]["answers"][0] = "*"  # the placeholder for an unknown author
    return books, images, [unknown]


# ---------------------------------------------------------------- TextCaps (scenes with a number on them)

def _textcaps(seed: int, n: int) -> tuple[list[dict], dict[str, bytes], list[str]]:
    """Images with one shape and a number written on it; 5 caption records each, spread through the file."""
    rng = _stream(seed, "textcaps")
    images, per_image, ids = {}, {}, []
    while len(ids) < n:
        image_id = f"{rng.getrandbits(64):016x}"  # OpenImages-style hex ids
        if image_id not in ids:
            ids.append(image_id)
    for image_id in ids:
        scene = make_scene(rng)[:1]
        number = rng.randint(2, 99)
        s = scene[0]
        image = Image.open(io.BytesIO(jpeg_bytes(scene))).convert("RGB")
        ImageDraw.Draw(image).text((4, SIZE - 14), str(number), fill=(0, 0, 0))
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=92, subsampling=0)
        images[f"textvqa/train_images/{image_id}.jpg"] = buf.getvalue()
        per_image[image_id] = [f"A {s['color']} {s['shape']} with the number {number} written below it.",
                               f"The number {number} is printed under a {s['color']} {s['shape']}.",
                               f"A {s['shape']} in {s['color']} next to the number {number}.",
                               f"An image of a {s['color']} {s['shape']} and the number {number}.",
                               f"The picture shows the number {number} and a {s['color']} {s['shape']}."]
    records, caption_id = [], 0
    for k in range(5):  # round-robin: the captions of one image are never adjacent
        for image_id in ids:
            caps = per_image[image_id]
            records.append({"image_id": image_id, "image_classes": ["Shape"],
                            "flickr_original_url": f"https://farm1.staticflickr.com/1/{image_id}_o.jpg",
                            "flickr_300k_url": f"https://c1.staticflickr.com/1/{image_id}_z.jpg",
                            "image_width": SIZE, "image_height": SIZE, "set_name": "train", "image_name": image_id,
                            "image_path": f"train/{image_id}.jpg", "caption_id": caption_id,
                            "caption_str": caps[k], "caption_tokens": ["<s>", *caps[k].lower().split(), "</s>"],
                            "reference_strs": caps,
                            "reference_tokens": [["<s>", *c.lower().split(), "</s>"] for c in caps]})
            caption_id += 1
    no_caption = rng.randrange(len(records))
    del records[no_caption]["caption_str"]
    return records, images, [f"caption_id {no_caption}"]


# ---------------------------------------------------------------- putting it together

NOT_AN_IMAGE = b"<html><body><h1>404 Not Found</h1></body></html>\n"  # what a failed download leaves
BROKEN_IMAGE_KINDS = {"truncated_jpeg": "first half of a valid JPEG", "empty_file": "0-byte file",
                      "text_as_jpg": "HTML text saved under a .jpg name",
                      "missing_image": "referenced by the questions but not written"}


def _break_images(rng: random.Random, files: dict[str, bytes], coco: list[str], gqa: list[str]) -> list[dict]:
    """Damage a few image files in place; the questions that use them stay, so converters must cope."""
    plan = list(zip(rng.sample(coco, 5), ("truncated_jpeg", "truncated_jpeg", "empty_file", "text_as_jpg",
                                          "missing_image")))
    plan += zip(rng.sample(gqa, 2), ("truncated_jpeg", "missing_image"))
    for path, kind in plan:
        if kind == "truncated_jpeg":
            files[path] = files[path][: len(files[path]) // 2]
        elif kind == "empty_file":
            files[path] = b""
        elif kind == "text_as_jpg":
            files[path] = NOT_AN_IMAGE
        else:
            del files[path]
    return [{"path": path, "kind": kind, "detail": BROKEN_IMAGE_KINDS[kind]} for path, kind in sorted(plan)]


def _write_json(path: Path, obj: Any, indent: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=indent) + "\n", encoding="utf-8")


def write_demo_data(out_dir: Path, *, seed: int = 0, n_images: int = 240) -> dict:
    """Write the demo tree under `out_dir` and return (and save as README.demo.json) its summary."""
    if n_images < 24:
        raise InputError(f"--n-images must be at least 24 to hold every broken case, got {n_images}")
    out_dir = Path(out_dir)
    rng = _stream(seed, "layout")
    n_test = max(2, n_images // 40)
    n_gqa = (n_images - n_test) // 3
    n_coco = n_images - n_test - n_gqa
    drawn = rng.sample(range(1, 581930), n_coco + n_test)  # real COCO ids go up to 581929
    coco_ids, test_ids = sorted(drawn[:n_coco]), sorted(drawn[n_coco:])
    gqa_ids = _gqa_image_ids(rng, n_gqa)

    scene_rng = _stream(seed, "scenes")
    coco = {i: make_scene(scene_rng) for i in coco_ids}
    test = {i: make_scene(scene_rng) for i in test_ids}
    gqa = {i: make_scene(scene_rng) for i in gqa_ids}
    paths = {**{f"coco/train2017/{i:012d}.jpg": s for i, s in coco.items()},
             **{f"coco/test2015/COCO_test2015_{i:012d}.jpg": s for i, s in test.items()},
             **{f"gqa/images/{i}.jpg": s for i, s in gqa.items()}}
    files = {path: jpeg_bytes(scene) for path, scene in paths.items()}
    broken = _break_images(rng, files, [p for p in paths if p.startswith("coco/train2017/")],
                           [p for p in paths if p.startswith("gqa/")])
    missing_coco = [int(Path(b["path"]).stem) for b in broken
                    if b["kind"] == "missing_image" and b["path"].startswith("coco/")]

    # VQAv2: both variants share images, count/colour questions and the two broken records.
    no_annotation, empty_answer = coco_ids[1] * 1000, coco_ids[2] * 1000
    yes_share = {}
    for folder, p_yes in (("vqav2", 0.5), ("vqav2_unbalanced", 0.75)):
        questions, annotations = _vqa_pair(seed, coco, p_yes)
        annotations = [a for a in annotations if a["question_id"] != no_annotation]
        for a in annotations:
            if a["question_id"] == empty_answer:
                a["multiple_choice_answer"] = ""
        yn = [a["multiple_choice_answer"] == "yes" for a in annotations if a["answer_type"] == "yes/no"]
        yes_share[folder] = round(sum(yn) / len(yn), 4)
        _write_json(out_dir / folder / "v2_OpenEnded_mscoco_train2014_questions.json",
                    _vqa_questions_file("train2014", questions))
        _write_json(out_dir / folder / "v2_mscoco_train2014_annotations.json", _vqa_annotations_file(annotations))
    test_questions = [{"image_id": i, "question": "How many squares are there?", "question_id": i * 1000}
                      for i in test_ids]
    _write_json(out_dir / "vqav2/v2_OpenEnded_mscoco_test2015_questions.json",
                _vqa_questions_file("test2015", test_questions))
    broken += [{"path": "vqav2/v2_mscoco_train2014_annotations.json", "kind": "question_without_annotation",
                "detail": f"question_id {no_annotation} has no annotation (same in vqav2_unbalanced/)"},
               {"path": "vqav2/v2_mscoco_train2014_annotations.json", "kind": "empty_multiple_choice_answer",
                "detail": f"question_id {empty_answer} has multiple_choice_answer \"\" (same in vqav2_unbalanced/)"}]

    gqa_questions = _gqa_questions(seed, gqa)
    no_image = rng.choice(sorted(gqa_questions))
    del gqa_questions[no_image]["imageId"]
    _write_json(out_dir / "gqa/train_balanced_questions.json", gqa_questions)
    broken.append({"path": "gqa/train_balanced_questions.json", "kind": "missing_image_id",
                   "detail": f"question {no_image} has no imageId"})
    regions = _region_sources(out_dir, seed, coco, n_images, files, paths)  # RefCOCO and VG, own streams

    sharegpt, sharegpt_notes = _sharegpt_records(seed, max(8, n_images // 10))
    _write_json(out_dir / "sharegpt/sharegpt_demo.json", sharegpt, indent=2)
    llava_ids = sorted(set(rng.sample(coco_ids, n_coco // 3)) | set(missing_coco))
    llava, llava_notes = _llava_records(seed, coco, llava_ids)
    _write_json(out_dir / "llava/llava_instruct_demo.json", llava, indent=2)

    # OK-VQA, A-OKVQA, OCR-VQA and TextCaps: each from its own random stream, so the sources above are unchanged.
    academic = _academic_sources(out_dir, seed, coco, n_images, files)
    broken += academic.pop("broken")
    evaluation = _pope_eval_set(seed, coco_ids, {b["path"] for b in broken}, files)

    for path, data in files.items():
        (out_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / path).write_bytes(data)
    # The ground truth behind every answer, for checking converters and trained models.
    _write_json(out_dir / "scenes.demo.json", {p: [{k: s[k] for k in ("shape", "color", "box")} for s in scene]
                                                for p, scene in paths.items()})
    summary = {
        "seed": seed, "n_images": n_images,
        "counts": {"coco_train2017_images": n_coco, "coco_test2015_images": n_test, "gqa_images": n_gqa,
                   "vqav2_questions": len(questions), "vqav2_annotations": len(annotations),
                   "vqav2_test_questions": len(test_questions), "vqav2_yes_share": yes_share,
                   "gqa_questions": len(gqa_questions), "sharegpt_records": len(sharegpt),
                   "llava_records": len(llava), **academic["counts"]},
        "broken": broken,
        "quirks": {"sharegpt": sharegpt_notes, "llava": llava_notes, **academic["quirks"],
                   "gqa": [f"n-prefixed imageIds: {sum(i.startswith('n') for i in gqa_ids)}"],
                   "vqav2": ["annotations are in a different order than questions",
                             "1-3 of the 10 answers often disagree (near colour, off-by-one, flipped yes/no)"]},
    }
    summary["counts"].update(regions["counts"])
    summary["evaluation"] = evaluation
    summary["broken"] += regions["broken"]
    summary["quirks"].update(regions["quirks"])
    _write_json(out_dir / "README.demo.json", summary, indent=2)
    return summary


def _pope_eval_set(seed: int, coco_ids: list[int], broken: set[str], files: dict[str, bytes]) -> dict:
    """A POPE file (`eval/pope/coco_pope_random.json`, its official JSON Lines) with its COCO val2014 images
    (`eval/val2014/`), leaking into the training sources the two ways real evaluation sets do: images whose
    val2014 ids are train2017 images of the demo (the same COCO pool: the ids tier), and images that are
    resized, recompressed copies of other training images under fresh ids (the pHash tier). One image is new.

    The demo's pictures are one to four flat shapes; pHash works on grayscale structure, so a shape of another
    colour at the same place is within a few bits: decontaminating with the pHash tier also removes such
    look-alikes, and the report's example pairs show them (what the report is for)."""
    rng = _stream(seed, "pope")
    usable = [i for i in coco_ids if f"coco/train2017/{i:012d}.jpg" not in broken]
    same_id, copied = rng.sample(usable, 4), rng.sample(usable, 2)
    copied = [i for i in copied if i not in same_id]
    fresh = [i for i in rng.sample(range(1, 581930), 8) if i not in coco_ids][: len(copied) + 1]
    images = {i: files[f"coco/train2017/{i:012d}.jpg"] for i in same_id}
    for new_id, train_id in zip(fresh, copied):
        images[new_id] = _resized_copy(files[f"coco/train2017/{train_id:012d}.jpg"])
    new_scene = make_scene(rng)
    while len(new_scene) < 4:  # a busy picture: one flat shape's pHash matches any shape at that place
        new_scene = make_scene(rng)
    images[fresh[-1]] = jpeg_bytes(new_scene)
    lines = []
    for image_id in sorted(images):
        for shape in ("circle", "square"):
            lines.append({"question_id": len(lines) + 1, "image": f"COCO_val2014_{image_id:012d}.jpg",
                          "text": f"Is there a {shape} in the image?", "label": rng.choice(["yes", "no"])})
    for image_id, data in images.items():
        files[f"eval/val2014/COCO_val2014_{image_id:012d}.jpg"] = data
    files["eval/pope/coco_pope_random.json"] = "".join(json.dumps(line) + "\n" for line in lines).encode()
    return {"pope_images": len(images), "pope_questions": len(lines),
            "same_coco_id_as_training": [f"coco/train2017/{i:012d}.jpg" for i in sorted(same_id)],
            "resized_copy_of_training": [f"coco/train2017/{i:012d}.jpg" for i in copied]}


def _resized_copy(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        small = img.convert("RGB").resize((img.width * 3 // 4, img.height * 3 // 4), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=70)
    return buf.getvalue()


def _academic_sources(out_dir: Path, seed: int, coco: dict[int, Scene], n_images: int,
                      files: dict[str, bytes]) -> dict:
    """Write the OK-VQA, A-OKVQA, OCR-VQA and TextCaps files; add their images to `files`."""
    rng = _stream(seed, "academic-layout")
    ids = sorted(coco)
    ok_scenes = {i: coco[i] for i in sorted(rng.sample(ids, max(4, len(ids) // 4)))}
    ok_questions, ok_annotations = _okvqa_pair(seed, ok_scenes)
    no_annotation = ok_questions[-1]["question_id"]
    ok_annotations = [a for a in ok_annotations if a["question_id"] != no_annotation]
    _stream(seed, "okvqa-order").shuffle(ok_annotations)
    _write_json(out_dir / "okvqa/OpenEnded_mscoco_train2014_questions.json",
                {"info": OKVQA_INFO, "task_type": "Open-Ended", "data_type": "mscoco", "license": VQA_LICENSE,
                 "data_subtype": "train2014", "questions": ok_questions})
    _write_json(out_dir / "okvqa/mscoco_train2014_annotations.json",
                {"info": OKVQA_INFO, "license": VQA_LICENSE, "data_subtype": "train2014",
                 "annotations": ok_annotations, "data_type": "mscoco", "question_types": OKVQA_TYPES})

    aok = _aokvqa_records(seed, {i: coco[i] for i in sorted(rng.sample(ids, max(4, len(ids) // 4)))})
    test_record = {k: v for k, v in aok.pop().items() if k not in ("correct_choice_idx", "direct_answers",
                                                                    "rationales")}
    _write_json(out_dir / "aokvqa/aokvqa_v1p0_train.json", aok)
    _write_json(out_dir / "aokvqa/aokvqa_v1p0_test.json", [{**test_record, "split": "test"}])

    books, covers, unknown_authors = _ocrvqa_books(seed, max(6, n_images // 10))
    _write_json(out_dir / "ocr_vqa/dataset.json", books)
    captions, caption_images, no_caption = _textcaps(seed, max(6, n_images // 12))
    _write_json(out_dir / "textcaps/TextCaps_0.1_train.json",
                {"dataset_type": "train", "dataset_name": "textcaps", "dataset_version": "0.1", "data": captions})
    files.update(covers)
    files.update(caption_images)
    return {
        "counts": {"okvqa_questions": len(ok_questions), "aokvqa_train_questions": len(aok),
                   "aokvqa_test_questions": 1, "ocrvqa_books": len(books), "ocrvqa_questions": 5 * len(books),
                   "textcaps_images": len(caption_images), "textcaps_captions": len(captions)},
        "quirks": {"ocrvqa": [f"{sum(b['imageURL'].endswith(('.gif', '.png')) for b in books.values())} covers "
                              "are GIF or PNG files saved under .jpg names, as LLaVA's download script does",
                              "ISBN keys with leading zeros or a final X"],
                   "textcaps": ["the 5 captions of an image are spread through the file"]},
        "broken": [{"path": "okvqa/mscoco_train2014_annotations.json", "kind": "okvqa_question_without_annotation",
                    "detail": f"question_id {no_annotation} has no annotation"},
                   {"path": "aokvqa/aokvqa_v1p0_test.json", "kind": "aokvqa_test_record",
                    "detail": "test-split record without correct_choice_idx"},
                   {"path": "ocr_vqa/dataset.json", "kind": "ocrvqa_placeholder_author",
                    "detail": f"book {unknown_authors[0]} has the author answer '*'"},
                   {"path": "textcaps/TextCaps_0.1_train.json", "kind": "textcaps_record_without_caption",
                    "detail": f"{no_caption[0]} has no caption_str"}],
    }
