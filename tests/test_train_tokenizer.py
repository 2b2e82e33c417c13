"""A user's SentencePiece tokenizer: the converted fast tokenizer must split as SentencePiece does, or be refused.

sentencepiece is not a dependency, so the SentencePiece side is the algorithm itself (bpe_model.cc: repeatedly
merge the adjacent pair whose joined piece has the highest score, leftmost first) on a small vocabulary scored
as the Llama family's is: whitespace-only pieces at -1e9, the others by id. The fast side is what the transformers
conversion builds from the same vocabulary, merges ranked by the joined piece's id. With Llama-style scores the two
disagree exactly as Vicuna's tokenizer does on indented code; with scores that follow the ids they agree.
"""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("tokenizers")

from datamix.train.config import TrainError
from datamix.train.tokenizer import PROBES, load_tokenizer, sentencepiece_mismatch, train_tokenizer

WORD_PIECES = ["▁▁", "▁▁▁▁", "▁▁▁", "re", "tu", "rn", "turn", "return", "▁return"]


def _vocab(llama_scores: bool) -> dict[str, tuple[int, float]]:
    """piece -> (id, score): the merged pieces first (as in Llama, where '▁▁' is id 259), then the characters."""
    chars = sorted({ch for p in PROBES for ch in p.replace(" ", "▁")} | set("return▁"))
    vocab = {}
    for piece in WORD_PIECES + [c for c in chars if c not in WORD_PIECES]:
        i = len(vocab)
        whitespace = set(piece) == {"▁"} and len(piece) > 1
        vocab[piece] = (i, -1e9 if llama_scores and whitespace else -float(i))
    return vocab


def sentencepiece_bpe(text: str, vocab: dict) -> list[str]:
    pieces = list(text.replace(" ", "▁"))
    while True:
        best = None
        for k in range(len(pieces) - 1):
            joined = pieces[k] + pieces[k + 1]
            if joined in vocab and (best is None or vocab[joined][1] > vocab[pieces[best] + pieces[best + 1]][1]):
                best = k
        if best is None:
            return pieces
        pieces[best:best + 2] = [pieces[best] + pieces[best + 1]]


def converted_fast(vocab: dict):
    """transformers' SentencePiece conversion: BPE with merges ordered by the joined piece's id."""
    from tokenizers import Tokenizer, models, normalizers
    from transformers import PreTrainedTokenizerFast

    merges = sorted(((a, p[len(a):]) for p in vocab for a in (p[:k] for k in range(1, len(p)))
                     if a in vocab and p[len(a):] in vocab), key=lambda m: vocab[m[0] + m[1]][0])
    tok = Tokenizer(models.BPE({p: i for p, (i, _) in vocab.items()}, merges))
    tok.normalizer = normalizers.Replace(" ", "▁")
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def test_llama_scores_make_the_conversion_split_indentation_differently():
    vocab = _vocab(llama_scores=True)
    assert sentencepiece_bpe("    return", vocab) == ["▁▁▁", "▁return"]
    assert converted_fast(vocab).tokenize("    return") == ["▁▁▁▁", "return"]
    problem = sentencepiece_mismatch(converted_fast(vocab), lambda t: sentencepiece_bpe(t, vocab))
    assert problem is not None and "'    return x'" in problem and "'▁return'" in problem


def test_scores_in_id_order_agree_on_every_probe():
    vocab = _vocab(llama_scores=False)
    assert sentencepiece_mismatch(converted_fast(vocab), lambda t: sentencepiece_bpe(t, vocab)) is None


def test_a_sentencepiece_folder_is_checked_before_use(tmp_path, monkeypatch):
    """A folder with a tokenizer.model is never used unchecked: without sentencepiece to check it, it is refused."""
    monkeypatch.setitem(sys.modules, "sentencepiece", None)  # `import sentencepiece` now raises ImportError
    train_tokenizer(["a b c"], vocab_size=300).save_pretrained(tmp_path)
    assert load_tokenizer(tmp_path).eos_token == "</s>"  # no tokenizer.model: loaded as it is
    (tmp_path / "tokenizer.model").write_bytes(b"\x0a\x00")
    with pytest.raises(TrainError, match="install sentencepiece"):
        load_tokenizer(tmp_path)
