"""The tiers on hand-made fingerprints: exact thresholds, and which match is named when several could be."""

from __future__ import annotations

import json
from pathlib import Path

from datamix.decontam.evalsets import EvalItem, EvalSet
from datamix.decontam.keys import Links
from datamix.decontam.match import EvalIndex, Walked, duplicate_hits, eval_hits_by_fingerprints, eval_hits_by_ids
from datamix.decontam.spec import Tiers
from datamix.fingerprints import Fingerprint


def fp(n: int, phash: int) -> Fingerprint:
    return Fingerprint(bytes([n]) * 32, bytes([n]) * 16, phash)


def index(*items: tuple[str, tuple[str, ...], Fingerprint | None]) -> EvalIndex:
    sets = [EvalSet("a", "list", Path("a.txt"), [EvalItem(i, i, k) for i, k, _ in items])]
    return EvalIndex(sets, Links([(5, 222)]), [[f for _, _, f in items]])


def test_ids_name_the_first_image_that_matches_and_the_first_item():
    idx = index(("x", ("coco:1",), None), ("y", ("coco:222",), None), ("z", ("coco:1",), None))
    hits = eval_hits_by_ids([[("coco:9",), ("coco:1",)], [Links([(5, 222)]).expand(["vg:5"])], [("coco:10",)]], idx)
    assert {r: (h.image, h.ref) for r, h in hits.items()} == {0: (1, 0), 1: (0, 1)}


def test_phash_threshold_is_inclusive_and_the_closest_item_wins():
    base = 0xF0F0_F0F0_F0F0_F0F0
    idx = index(("far", (), fp(1, base ^ 0b1111)), ("near", (), fp(2, base ^ 0b1)))
    rows = {0: [fp(10, base)],  # 1 bit from "near", 4 from "far"
            1: [fp(11, base ^ 0b1111 ^ (0b1111 << 8))],  # exactly 4 bits from "far"
            2: [fp(12, base ^ 0b1111 ^ (0b11111 << 8))],  # 5 bits from "far": a near miss
            3: ["missing_image: x.jpg"]}
    hits = eval_hits_by_fingerprints(rows, idx, Tiers(ids=False, bytes=True, pixels=True, phash=4))
    assert {r: (h.tier, h.distance, h.ref) for r, h in hits.items()} == {0: ("phash", 1, 1), 1: ("phash", 4, 0)}


def test_exact_tiers_come_before_phash_and_bytes_before_pixels():
    idx = index(("e", (), fp(1, 7)))
    same_pixels = Fingerprint(b"\x09" * 32, fp(1, 7).pixels, 7)
    hits = eval_hits_by_fingerprints({0: [fp(1, 7)], 1: [same_pixels]}, idx, Tiers())
    assert (hits[0].tier, hits[1].tier) == ("bytes", "pixels")
    off = eval_hits_by_fingerprints({0: [fp(1, 7)]}, idx, Tiers(bytes=False, pixels=False, phash=None))
    assert off == {}


def test_dedupe_keeps_the_first_and_spares_one_source_reusing_one_image():
    shared = fp(1, 100)
    walk = [Walked(("a\x1fp.jpg",), [shared], None), Walked(("a\x1fp.jpg",), [shared], None),  # one place: kept
            Walked(("b\x1fq.jpg",), [shared], None),  # the same bytes elsewhere: a duplicate of walk[0]
            Walked(("b\x1fr.jpg",), [fp(2, 100 ^ 0b11)], None)]  # 2 bits away
    assert {n: (h.tier, h.ref) for n, h in duplicate_hits(walk, "bytes", None).items()} == {2: ("bytes", 0)}
    near = duplicate_hits(walk, "phash", 2)
    assert {n: (h.tier, h.distance, h.ref) for n, h in near.items()} == {2: ("phash", 0, 0), 3: ("phash", 2, 0)}
    assert set(duplicate_hits(walk, "phash", 1)) == {2}


def test_only_ascii_digits_are_ids():
    from datamix.decontam.keys import gqa_key, image_keys

    assert image_keys("gqa/images/\u00b2.jpg") == ("gqa:\u00b2",)  # int("²") would crash the build
    assert gqa_key("\u0663") == "gqa:\u0663" and gqa_key("2354786") == "vg:2354786"
    assert image_keys("vg/VG_100K/\u0663.jpg") == ()  # an Arabic-Indic 3 is not VG image 3
    assert image_keys("coco/train2017/" + "\u0660" * 6 + "391895.jpg") == ()  # not COCO 391895


def test_a_vqav2_file_without_data_subtype_takes_the_split_from_its_official_name(tmp_path):
    from datamix.decontam.evalsets import read_eval_set
    from datamix.decontam.spec import EvalSpec

    path = tmp_path / "v2_OpenEnded_mscoco_val2014_questions.json"
    path.write_text(json.dumps({"questions": [{"image_id": 42, "question": "Why?", "question_id": 420}]}))
    es = read_eval_set(EvalSpec(name="v", kind="vqav2", path=path))
    assert [(i.item, i.image) for i in es.items] == [("COCO_val2014_000000000042.jpg",
                                                      "val2014/COCO_val2014_000000000042.jpg")]
