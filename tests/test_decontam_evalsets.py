"""Evaluation-set readers and image id keys: each official file shape, its quirks, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datamix.decontam.evalsets import read_eval_set
from datamix.decontam.spec import EvalSpec
from datamix.decontam.keys import Links, image_keys
from datamix.errors import ConverterError

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("path, converter, keys", [
    ("coco/train2017/000000391895.jpg", None, ("coco:391895",)),
    ("train2014/COCO_train2014_000000391895.jpg", None, ("coco:391895",)),
    ("COCO_val2014_000000391895.jpg", None, ("coco:391895",)),
    ("val2017/000000391895.jpg", None, ("coco:391895",)),
    ("000000033471.jpg", "llava", ("coco:33471",)),  # llava_instruct_150k: bare COCO names
    ("COCO_train2014_000000581857_16.jpg", None, ("coco:581857",)),  # refs file_name with its ann suffix
    ("test2015/COCO_test2015_000000000001.jpg", None, ("coco-test:1",)),  # test images: their own pool
    ("test2015/000000000001.jpg", None, ("coco-test:1",)),
    ("vg/VG_100K/2345.jpg", None, ("vg:2345",)),
    ("VG_100K_2/51.jpg", "vg", ("vg:51",)),
    ("gqa/images/2354786.jpg", "llava", ("vg:2354786",)),  # GQA images are VG images
    ("gqa/images/n161313.jpg", "llava", ("gqa:n161313",)),
    ("images/2354786.jpg", "gqa", ("vg:2354786",)),
    ("images/0060555661.jpg", "ocrvqa", ()),  # an all-digit ISBN cover is no GQA image
    ("textvqa/train_images/011e7e629fb9ae7b.jpg", "llava", ("openimages:011e7e629fb9ae7b",)),
    ("train_images/011e7e629fb9ae7b.jpg", "textcaps", ("openimages:011e7e629fb9ae7b",)),
    ("ocr_vqa/images/140031996X.jpg", "llava", ()),
    ("other/000000391895.jpg", None, ()),  # twelve digits outside a COCO folder: no claim
])
def test_image_keys_name_one_image_under_every_naming(path, converter, keys):
    assert image_keys(path, converter) == keys


def test_links_join_vg_and_coco_both_ways_and_skip_null_and_minus_one(tmp_path):
    data = tmp_path / "image_data.json"
    data.write_text(json.dumps([
        {"width": 800, "url": "https://cs.stanford.edu/people/rak248/VG_100K/1.jpg", "height": 600, "image_id": 1,
         "coco_id": 391895, "flickr_id": None},
        {"width": 500, "url": "https://cs.stanford.edu/people/rak248/VG_100K_2/51.jpg", "height": 800,
         "image_id": 51, "coco_id": None, "flickr_id": None},
        {"width": 5, "url": "u", "height": 5, "id": 7, "coco_id": -1},  # v1.0 spelling, no COCO image
        {"width": 5, "url": "u", "height": 5, "id": 9, "coco_id": 12},
    ]))
    links = Links.read([data])
    assert len(links) == 2
    assert links.expand(["vg:1"]) == ("vg:1", "coco:391895")
    assert links.expand(["coco:391895"]) == ("coco:391895", "vg:1")
    assert links.expand(["vg:9"]) == ("vg:9", "coco:12")
    assert links.expand(["vg:51"]) == ("vg:51",) and links.expand(["vg:7"]) == ("vg:7",)


def read(tmp_path: Path, kind: str, text: str | bytes, name: str = "eval.json", **kw):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return read_eval_set(EvalSpec(name="e", kind=kind, path=path, **kw))


def test_vqav2_test_dev_images_are_test2015_images(tmp_path):
    data = {"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "data_subtype": "test-dev2015",
            "questions": [{"image_id": 1, "question": "What?", "question_id": 1000},
                          {"image_id": 1, "question": "Why?", "question_id": 1001},
                          {"image_id": 262144, "question": "Who?", "question_id": 262144000}]}
    got = read(tmp_path, "vqav2", json.dumps(data), "v2_OpenEnded_mscoco_test-dev2015_questions.json")
    assert [(i.item, i.image, i.keys) for i in got.items] == [
        ("COCO_test2015_000000000001.jpg", "test2015/COCO_test2015_000000000001.jpg", ("coco-test:1",)),
        ("COCO_test2015_000000262144.jpg", "test2015/COCO_test2015_000000262144.jpg", ("coco-test:262144",))]


def test_vqav2_val_questions_key_the_trainval_pool(tmp_path):
    data = {"data_subtype": "val2014", "questions": [{"image_id": 391895, "question": "q", "question_id": 1}]}
    got = read(tmp_path, "vqav2", "\ufeff" + json.dumps(data))  # a byte order mark is accepted
    assert got.items[0].keys == ("coco:391895",) and got.items[0].image == "val2014/COCO_val2014_000000391895.jpg"


def test_gqa_testdev_keeps_vg_and_gqa_only_ids(tmp_path):
    data = {"201971873": {"imageId": "n15740", "question": "Is it?", "answer": "yes"},
            "201971874": {"imageId": "2354786", "question": "What?", "answer": "a"},
            "201971875": {"imageId": "n15740", "question": "Where?", "answer": "b"}}
    got = read(tmp_path, "gqa", json.dumps(data), "testdev_balanced_questions.json")
    assert [(i.item, i.image, i.keys) for i in got.items] == [
        ("n15740", "n15740.jpg", ("gqa:n15740",)), ("2354786", "2354786.jpg", ("vg:2354786",))]


def test_gqa_reader_is_the_converters_official_reader(fixtures_path):
    got = read_eval_set(EvalSpec("g", "gqa", fixtures_path / "gqa" / "test" / "test_balanced_questions.json"))
    assert [i.keys for i in got.items] == [("gqa:n15740",)]


def test_textvqa_val_openimages_ids(tmp_path):
    data = {"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": [
        {"question": "what is written?", "image_id": "003a8ae2ef43b901", "image_classes": ["Poster"],
         "flickr_original_url": "https://farm2.staticflickr.com/x.jpg", "image_width": 1024, "image_height": 664,
         "answers": ["yes"] * 10, "question_id": 34602, "set_name": "val"},
        {"question": "again?", "image_id": "003a8ae2ef43b901", "question_id": 34603},
        {"question": "no image", "question_id": 34604}]}
    got = read(tmp_path, "textvqa", json.dumps(data), "TextVQA_0.5.1_val.json")
    assert [(i.item, i.keys) for i in got.items] == [("003a8ae2ef43b901", ("openimages:003a8ae2ef43b901",))]
    assert got.without_image == 1


def test_pope_json_lines_with_windows_line_ends(tmp_path):
    lines = [{"question_id": 1, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a snowboard?",
              "label": "yes"},
             {"question_id": 2, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a dog?", "label": "no"},
             {"question_id": 3, "image": "COCO_val2014_000000210789.jpg", "text": "Is there a car?", "label": "no"}]
    got = read(tmp_path, "pope", "\r\n".join(json.dumps(r) for r in lines) + "\r\n", "coco_pope_random.json")
    assert [(i.item, i.keys) for i in got.items] == [("COCO_val2014_000000310196.jpg", ("coco:310196",)),
                                                      ("COCO_val2014_000000210789.jpg", ("coco:210789",))]


def test_mme_questions_and_release_folder(tmp_path):
    lines = [{"question_id": "existence/000000006040.jpg", "image": "existence/000000006040.jpg",
              "text": "Is there a train in this image?", "category": "existence"},
             {"question_id": "code_reasoning/0020.png", "image": "code_reasoning/0020.png", "text": "q",
              "category": "code_reasoning"}]
    got = read(tmp_path, "mme", "\n".join(json.dumps(r) for r in lines), "llava_mme.jsonl")
    assert [(i.item, i.keys) for i in got.items] == [("existence/000000006040.jpg", ("coco:6040",)),
                                                      ("code_reasoning/0020.png", ())]
    release = tmp_path / "MME_Benchmark_release_version"
    for rel in ["existence/000000006040.jpg", "existence/000000006040.txt", "artwork/images/10002.jpg"]:
        (release / rel).parent.mkdir(parents=True, exist_ok=True)
        (release / rel).write_bytes(b"x")
    folder = read_eval_set(EvalSpec("mme", "mme", release))
    assert [(i.item, i.keys) for i in folder.items] == [("artwork/images/10002.jpg", ()),
                                                         ("existence/000000006040.jpg", ("coco:6040",))]
    assert folder.image_root == release  # the folder itself holds the images


def test_refcoco_reads_only_evaluation_splits_through_the_restricted_unpickler(fixtures_path):
    path = fixtures_path / "refcoco" / "refcoco" / "refs(unc).p"
    got = read_eval_set(EvalSpec("refcoco", "refcoco", path))
    assert [(i.item, i.image, i.keys) for i in got.items] == [
        ("COCO_train2014_000000400000.jpg", "train2014/COCO_train2014_000000400000.jpg", ("coco:400000",))]
    train = read_eval_set(EvalSpec("refcoco", "refcoco", path, splits=("train",)))
    assert {i.keys for i in train.items} == {("coco:581857",), ("coco:98304",), ("coco:400000",), ("coco:262161",)}


def test_refcoco_pickle_asking_for_a_global_is_refused(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    with pytest.raises(ConverterError, match="refused to unpickle"):
        read(tmp_path, "refcoco", pickle.dumps([Evil()]), "refs(unc).p")


def test_llava_json_and_plain_list(tmp_path):
    got = read(tmp_path, "llava", json.dumps([{"id": "a", "image": "coco/val2014/COCO_val2014_000000000042.jpg"},
                                              {"id": "b", "conversations": []},
                                              {"id": "c", "image": ["gqa/images/1.jpg", "vg/VG_100K/2.jpg"]}]))
    assert [i.keys for i in got.items] == [("coco:42",), ("vg:1",), ("vg:2",)] and got.without_image == 1
    text = "\ufeff# eval images\r\nval2014/COCO_val2014_000000000042.jpg\r\n\r\n  other/pic.png  \r\n"
    listed = read(tmp_path, "list", text.encode("utf-8"), "images.txt")
    assert [(i.item, i.keys) for i in listed.items] == [("val2014/COCO_val2014_000000000042.jpg", ("coco:42",)),
                                                         ("other/pic.png", ())]


@pytest.mark.parametrize("kind, text, message", [
    ("vqav2", '{"data_subtype": "val2014"}', "not a VQAv2 file"),
    ("vqav2", '{"questions": [', "not valid JSON"),
    ("gqa", "[1, 2]", "not a GQA questions file"),
    ("textvqa", '{"data": 3}', "not a TextVQA file"),
    ("textvqa", "{", "not valid JSON"),
    ("pope", "", "the file is empty"),
    ("pope", '{"question_id": 1}\n', "JSON Lines of records with 'image'"),
    ("list", b"a.jpg\n\xff\xfe\n", "not UTF-8 text"),
    ("refcoco", b"not a pickle", "not a RefCOCO refs pickle"),
    ("folder", "x", "not a folder"),
])
def test_bad_eval_files_give_one_line_errors(tmp_path, kind, text, message):
    with pytest.raises(ConverterError) as caught:
        read(tmp_path, kind, text)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_bad_textvqa_entry_is_one_record_not_the_whole_file(tmp_path):
    data = {"data": [None, "x", {"question": "q", "image_id": "003a8ae2ef43b901", "question_id": 1}]}
    got = read(tmp_path, "textvqa", json.dumps(data), "TextVQA_0.5.1_val.json")
    assert [i.item for i in got.items] == ["003a8ae2ef43b901"] and got.without_image == 2


def test_malformed_refs_are_counted_not_dropped_unseen(tmp_path):
    import pickle

    from datamix.decontam.evalsets import read_eval_set
    from datamix.decontam.spec import EvalSpec

    refs = [{"ref_id": 1, "ann_id": 2, "image_id": 581857, "split": "val",
             "file_name": "COCO_train2014_000000581857_2.jpg", "category_id": 1,
             "sentences": [{"sent": "a dog", "sent_id": 1}], "sent_ids": [1]},
            None, "x", {"ref_id": 3, "image_id": "bad", "split": "val"}]
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps(refs, protocol=2))
    got = read_eval_set(EvalSpec(name="refcoco", kind="refcoco", path=path))
    assert [i.item for i in got.items] == ["COCO_train2014_000000581857.jpg"] and got.without_image == 3
