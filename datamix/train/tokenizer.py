"""Tokenizers: a user's LLM tokenizer, or a small byte-level BPE trained on the mix's own text.

The trained one has the special tokens a LLaVA run needs (`<s>`, `</s>`, `<unk>`, `<image>`) and, like LLaVA with
Vicuna (LLaVA conversation.py), pads with `<unk>`. Byte-level BPE never produces `<unk>` for unseen characters, so a
stage-2 mix whose text the tokenizer has not seen still encodes losslessly.

A user's model folder with a SentencePiece `tokenizer.model` (Vicuna-7B-v1.5 ships only that) is converted by
transformers into a fast tokenizer, which the trainer needs for its character offsets (template.py). The
conversion can split differently from SentencePiece itself: the Llama family scores whitespace-only pieces at
-1e9, so SentencePiece merges them last, while the conversion orders merges by piece id; four spaces then
`return` become `['▁▁▁▁', 'return']` instead of `['▁▁▁', '▁return']`, and indented code would train on other
tokens than the LLM was trained with. So such a folder's fast tokenizer is checked against the slow one
(SentencePiece) on probe strings and refused, with the first difference, when they disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from datamix.train.config import TrainError
from datamix.train.template import IMAGE_TOKEN

SPECIALS = ["<unk>", "<s>", "</s>", IMAGE_TOKEN]


def train_tokenizer(texts: Iterable[str], *, vocab_size: int):
    """A PreTrainedTokenizerFast with a BPE vocabulary of at most `vocab_size` learnt from `texts`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    # Offsets keep the leading space (template.py); BOS when special tokens are asked for, as Llama's tokenizer,
    # so that a processor tokenizing a whole prompt (LlavaNextProcessor) gives the trainer's ids.
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                      special_tokens=[("<s>", tok.token_to_id("<s>"))]),
    ])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<unk>", extra_special_tokens=[IMAGE_TOKEN], padding_side="right",
                                   model_max_length=2048)


# Indentation, runs of spaces and tabs, blank lines, trailing spaces, accents and digits: where conversions differ.
PROBES = ("    return x", "def f():\n        return 1", "a  b   c    d", "\tif x:\n\t\ty = 2", "line\n\n\nnext",
          "trailing   ", " leading", "naïve café 2024", "x=[1, 2,  3]")


def sentencepiece_mismatch(fast, reference_tokenize) -> str | None:
    """The first probe the fast tokenizer splits differently from `reference_tokenize` (SentencePiece), or None."""
    for probe in PROBES:
        want, got = list(reference_tokenize(probe)), list(fast.tokenize(probe))
        if want != got:
            return f"{probe!r} is {want} in SentencePiece but {got} in the fast tokenizer"
    return None


def _check_sentencepiece(tok, path: Path) -> None:
    """Refuse a fast tokenizer that does not split as the folder's SentencePiece model does."""
    from transformers import AutoTokenizer

    try:
        import sentencepiece  # noqa: F401  (the slow tokenizer needs it)
    except ImportError:
        raise TrainError(f"{path}: has a SentencePiece tokenizer.model; install sentencepiece so the converted "
                         f"fast tokenizer can be checked against it (pip install sentencepiece)") from None
    slow = AutoTokenizer.from_pretrained(str(path), use_fast=False)
    problem = sentencepiece_mismatch(tok, slow.tokenize)
    if problem:
        raise TrainError(f"{path}: the fast tokenizer converted from tokenizer.model does not tokenize as "
                         f"SentencePiece ({problem}); training on it would not match the LLM. Give a folder whose "
                         f"tokenizer.json matches its tokenizer.model")


def load_tokenizer(path: str | Path):
    """A user's tokenizer (or a run's saved one) with the `<image>` token and LLaVA's pad = unk rule."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path), use_fast=True)
    except (OSError, ValueError) as exc:  # no tokenizer files, or a damaged tokenizer.json / config
        raise TrainError(f"{path}: cannot load the tokenizer ({str(exc).splitlines()[0]})") from None
    if Path(path, "tokenizer.model").is_file():
        _check_sentencepiece(tok, Path(path))
    if IMAGE_TOKEN not in tok.get_vocab():
        tok.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    if tok.pad_token is None:
        tok.pad_token = tok.unk_token  # LLaVA: pad = unk for every template but v0 (§4)
    tok.padding_side = "right"
    return tok


def conversation_texts(samples: Iterable[dict], *, limit: int = 50_000) -> Iterator[str]:
    """The turns of the first `limit` samples, `<image>` removed: what the tiny tokenizer is trained on."""
    from datamix.train.template import VICUNA_SYSTEM

    yield VICUNA_SYSTEM + " USER: ASSISTANT:"
    for n, sample in enumerate(samples):
        if n >= limit:
            return
        for turn in sample["conversations"]:
            yield turn["value"].replace(IMAGE_TOKEN, "")
