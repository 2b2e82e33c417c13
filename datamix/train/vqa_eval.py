"""VQA answer normalisation and accuracy, as the official VQA evaluation (vqaEval.py) computes them.

Normalisation: punctuation handling, number words to digits, articles dropped, common contractions fixed.
Accuracy against 10 human answers: min(1, matches among the other 9 / 3), averaged over the 10 leave-one-out
subsets; against a single reference answer (GQA), exact match of the normalised strings.
"""

from __future__ import annotations

import re

_CONTRACTIONS = {  # the frequent entries of vqaEval's table (it also lists rarer ones, e.g. "wouldn'tve")
    "arent": "aren't", "cant": "can't", "couldnt": "couldn't", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hasnt": "hasn't", "havent": "haven't", "isnt": "isn't", "its": "it's",
    "shouldnt": "shouldn't", "thats": "that's", "theres": "there's", "theyre": "they're", "wasnt": "wasn't",
    "werent": "weren't", "whats": "what's", "wont": "won't", "wouldnt": "wouldn't", "youre": "you're",
}
_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
            "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
_PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")


def _punctuation(text: str) -> str:
    out = text
    for p in _PUNCT:
        if (p + " " in text or " " + p in text) or re.search(_COMMA_STRIP, text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out)


def _digits_articles(text: str) -> str:
    words = [_NUMBERS.get(w, w) for w in text.lower().split() if w not in _ARTICLES]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words)


def normalize_answer(text: str) -> str:
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return _digits_articles(_punctuation(text))


def vqa_accuracy(prediction: str, references: list[str]) -> float:
    pred = normalize_answer(prediction)
    refs = [normalize_answer(r) for r in references]
    if len(refs) < 2:
        return float(bool(refs) and pred == refs[0])
    scores = [min(1.0, sum(r == pred for j, r in enumerate(refs) if j != i) / 3) for i in range(len(refs))]
    return sum(scores) / len(scores)
