"""VQA answer normalisation and accuracy as the official evaluation computes them."""

from __future__ import annotations

import pytest

from datamix.train.vqa_eval import normalize_answer, vqa_accuracy


@pytest.mark.parametrize(("raw", "norm"), [("Two", "2"), ("a red circle.", "red circle"), ("Yes!", "yes"),
                                           ("dont", "don't"), ("3.5", "3.5"), ("1,000", "1000")])
def test_normalize(raw, norm):
    assert normalize_answer(raw) == norm


def test_accuracy_against_ten_humans():
    refs = ["2"] * 7 + ["3"] * 3
    assert vqa_accuracy("two", refs) == 1.0
    assert vqa_accuracy("3", refs) == pytest.approx((7 * 1.0 + 3 * (2 / 3)) / 10)
    assert vqa_accuracy("4", refs) == 0.0


def test_accuracy_against_one_answer():
    assert vqa_accuracy("Circle.", ["circle"]) == 1.0
    assert vqa_accuracy("square", ["circle"]) == 0.0
