"""Templates and label masking (LLaVA train.py preprocess_plain / preprocess_v1): rendered bytes, supervised spans, image tokens, length limit."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from datamix.train.config import TrainError
from datamix.train.template import IGNORE_INDEX, encode, encode_many, normalize_turns, render, supervised_spans
from datamix.train.tokenizer import train_tokenizer

N_IMG = 5  # image tokens per <image>
PROMPT = "Answer the question using a single word or phrase."
CORPUS = ["What color is the circle?", "How many squares are there?", "Is there a triangle?", PROMPT,
          "red blue green yellow purple yes no 0 1 2 3", "What is 3 + 4? 3 + 4 = 7.",
          "I can see two shapes: a red square and a blue circle."] * 20


def _metaspace_tokenizer():
    """A SentencePiece-like tokenizer (Metaspace, dummy prefix), the kind Vicuna's is, built offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Sequence([decoders.Metaspace(replacement="▁", prepend_scheme="first"),
                                     decoders.ByteFallback()])
    specials = ["<unk>", "<s>", "</s>", "<image>"] + [f"<0x{i:02X}>" for i in range(256)]
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=600, special_tokens=specials))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<unk>", extra_special_tokens=["<image>"])


@pytest.fixture(scope="module", params=["byte-level", "metaspace"])
def tok(request):
    return train_tokenizer(CORPUS, vocab_size=400) if request.param == "byte-level" else _metaspace_tokenizer()


def enc(tok, conv, template="vicuna_v1", max_length=4096, **kw):
    return encode(tok, conv, template=template, image_seq_length=N_IMG, image_token_id=tok.convert_tokens_to_ids(
        "<image>"), max_length=max_length, **kw)


def turns(*values, image=True):
    conv = [{"from": ("human", "gpt")[i % 2], "value": v} for i, v in enumerate(values)]
    if image:
        conv[0]["value"] = "<image>\n" + conv[0]["value"]
    return conv


TWO_ROUNDS = turns(f"Q1\n{PROMPT}", "A1", "Q2", "A2")


def test_vicuna_v1_renders_the_documented_bytes():
    text, _ = render(normalize_turns(TWO_ROUNDS), "vicuna_v1")
    assert text == ("A chat between a curious user and an artificial intelligence assistant. The assistant gives "
                    "helpful, detailed, and polite answers to the user's questions. USER: <image>\nQ1\nAnswer the "
                    "question using a single word or phrase. ASSISTANT: A1</s>USER: Q2 ASSISTANT: A2</s>")


def test_generation_prompt_is_the_training_prefix():
    prompt, _ = render(normalize_turns(TWO_ROUNDS[:1]), "vicuna_v1", generation=True)
    full, _ = render(normalize_turns(TWO_ROUNDS[:2]), "vicuna_v1")
    assert prompt.endswith("USER: <image>\nQ1\n" + PROMPT + " ASSISTANT:")
    assert full.startswith(prompt)


def test_image_token_moves_to_the_front():
    conv = [{"from": "human", "value": "What is this?\n<image>"}, {"from": "gpt", "value": "red"}]
    assert normalize_turns(conv)[0][1] == "<image>\nWhat is this?"


@pytest.mark.parametrize("conv", [
    turns("What color is the circle?", "red"),
    turns(f"How many squares are there?\n{PROMPT}", "2", "Is there a triangle?", "no", "What color is the circle?",
          "blue"),
    turns("What is 3 + 4?", "3 + 4 = 7.", "And 3 + 3?", "It is 6.", image=False),
    turns("What shapes can you see?", "I can see two shapes: a red square and a blue circle."),
], ids=["one-round", "multi-round", "text-only", "image-long-answer"])
def test_each_supervised_span_decodes_to_its_answer_and_eos(tok, conv):
    e = enc(tok, conv)
    answers = [t["value"] for t in conv if t["from"] == "gpt"]
    spans = [tok.decode(s) for s in supervised_spans(e.labels)]
    assert [s.strip() for s in spans] == [a + "</s>" for a in answers]
    assert e.input_ids[0] == tok.bos_token_id and e.labels[0] == IGNORE_INDEX
    image_id = tok.convert_tokens_to_ids("<image>")
    positions = [i for i, t in enumerate(e.input_ids) if t == image_id]
    assert len(positions) == (N_IMG if "<image>" in conv[0]["value"] else 0)
    assert all(e.labels[i] == IGNORE_INDEX for i in positions)
    # Everything else is masked: system prompt and user turns never reach the loss.
    assert sum(lab != IGNORE_INDEX for lab in e.labels) == sum(len(s) for s in supervised_spans(e.labels))
    assert "USER" not in "".join(spans) and "curious" not in "".join(spans)


def test_plain_template_is_image_caption_newline(tok):
    conv = turns("Render a clear and concise summary of the photo.", "a red square")
    e = enc(tok, conv, template="plain")
    assert e.text == "<image>a red square\n"  # the instruction is dropped, no </s>
    assert e.input_ids[:1 + N_IMG] == [tok.bos_token_id] + [tok.convert_tokens_to_ids("<image>")] * N_IMG
    assert e.labels[:1 + N_IMG] == [IGNORE_INDEX] * (1 + N_IMG)
    assert all(lab != IGNORE_INDEX for lab in e.labels[1 + N_IMG:])
    assert tok.eos_token_id not in e.input_ids
    assert tok.decode(e.labels[1 + N_IMG:]).strip() == "a red square"


def test_length_limit_counts_the_image_tokens(tok):
    full = enc(tok, TWO_ROUNDS)
    first_image = full.input_ids.index(tok.convert_tokens_to_ids("<image>"))
    limit = first_image + N_IMG + 3
    cut = enc(tok, TWO_ROUNDS, max_length=limit)
    assert len(cut.input_ids) == len(cut.labels) == limit
    assert cut.input_ids == full.input_ids[:limit]
    with pytest.raises(TrainError, match="cuts into the image tokens"):
        enc(tok, TWO_ROUNDS, max_length=first_image + 2)


def test_broken_alternation_is_a_clear_error(tok):
    conv = turns("Q", "A") + [{"from": "gpt", "value": "again"}]
    with pytest.raises(TrainError, match="alternate"):
        enc(tok, conv, sample_id="x/1")


def test_leading_non_human_turns_are_dropped(tok):
    conv = [{"from": "system", "value": "Be brief."}] + turns("Q", "A", image=False)
    assert "Be brief" not in enc(tok, conv).text


def _reference_encode(tok, conv, template="vicuna_v1", max_length=4096):
    """The original tokenization: the HF tokenizer's __call__ once per chunk, labels by span overlap."""
    text, spans = render(normalize_turns(conv), template)
    image_id = tok.convert_tokens_to_ids("<image>")
    ids, labels, offset = [tok.bos_token_id], [IGNORE_INDEX], 0
    for k, chunk in enumerate(text.split("<image>")):
        if k:
            ids, labels, offset = ids + [image_id] * N_IMG, labels + [IGNORE_INDEX] * N_IMG, offset + len("<image>")
        if chunk:
            e = tok(chunk, add_special_tokens=False, return_offsets_mapping=True)
            for t, (a, b) in zip(e["input_ids"], e["offset_mapping"]):
                a, b = a + offset, max(b, a + 1) + offset
                ids.append(t)
                labels.append(t if any(a < end and start < b for start, end in spans) else IGNORE_INDEX)
        offset += len(chunk)
    return ids[:max_length], labels[:max_length]


MANY = [turns("What color is the circle?", "red"), turns(f"How many squares are there?\n{PROMPT}", "2", "Why?", "yes"),
        turns("What is 3 + 4?", "3 + 4 = 7.", image=False), turns("Is there a triangle?", "no"),
        [{"from": "human", "value": "<image>\nWhat color is the circle?<image>"}, {"from": "gpt", "value": "blue"}]]


@pytest.mark.parametrize("template", ["vicuna_v1", "plain"])
def test_batched_and_cached_encoding_is_the_per_chunk_encoding(tok, template):
    convs = [c for c in MANY if template == "vicuna_v1" or "<image>" in c[0]["value"]]
    kw = {"template": template, "image_seq_length": N_IMG, "image_token_id": tok.convert_tokens_to_ids("<image>"),
          "max_length": 4096}
    cache = {}
    for _ in range(2):  # the second pass reads the system prompt's tokens from the cache
        many = encode_many(tok, [(c, "?") for c in convs + convs], cache=cache, **kw)
        for c, e in zip(convs + convs, many):
            assert (e.input_ids, e.labels) == _reference_encode(tok, c, template)
    before_images = {c for conv in convs for c in render(normalize_turns(conv), template)[0].split("<image>")[:-1]}
    assert set(cache) == {c for c in before_images if c}  # only text before an <image>, e.g. the system prompt
    assert len(cache) == (1 if template == "vicuna_v1" else 0)  # the system prompt; plain starts with <image>


def test_encoding_falls_back_to_the_hf_call(tok):
    """With truncation set on the backend tokenizer, the direct backend call could differ: __call__ is used."""
    kw = {"template": "vicuna_v1", "image_seq_length": N_IMG, "image_token_id": tok.convert_tokens_to_ids("<image>"),
          "max_length": 4096}
    assert tok.backend_tokenizer.truncation is None
    tok.backend_tokenizer.enable_truncation(10_000)
    try:
        got = [(e.input_ids, e.labels) for e in encode_many(tok, [(c, "?") for c in MANY], **kw)]
    finally:
        tok.backend_tokenizer.no_truncation()
    assert got == [_reference_encode(tok, c) for c in MANY]


@pytest.mark.parametrize("literal", ["</s>", "<s>", "<unk>"])
def test_special_token_text_in_data_is_text_not_a_control_token(tok, literal):
    """A literal `</s>` in an answer must not end it: only the template's closing `</s>` is the EOS id."""
    conv = turns("Write the HTML end tag of s.", f"It is {literal} in HTML.", "And again?", "x")
    e = enc(tok, conv)
    specials = {tok.eos_token_id, tok.bos_token_id, tok.unk_token_id}
    # BOS first, then one EOS per answer, each the last supervised token of its span; nothing special elsewhere.
    assert [i for i, t in enumerate(e.input_ids) if t in specials] == [0] + [
        i for i, t in enumerate(e.input_ids) if t == tok.eos_token_id]
    assert e.input_ids.count(tok.eos_token_id) == 2
    spans = supervised_spans(e.labels)
    assert [s[-1] for s in spans] == [tok.eos_token_id] * 2
    assert [tok.decode(s[:-1]).strip() for s in spans] == [f"It is {literal} in HTML.", "x"]
    # The round after it tokenizes as in a sample without the literal.
    plain = enc(tok, turns("Write the HTML end tag of s.", "It is x in HTML.", "And again?", "x"))
    after = lambda ids: ids[ids.index(tok.eos_token_id) + 1:][:4]
    assert after(e.input_ids) == after(plain.input_ids)
