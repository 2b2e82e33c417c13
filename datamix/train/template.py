"""Conversation templates and label masking: one function renders and masks, for training and for inference.

`plain` (stage 1, LLaVA train.py preprocess_plain): the human turn becomes just `<image>`, the string is `<image>` + answer + `\n`,
no `</s>`; loss on the answer and the newline. `vicuna_v1` (stage 2, §4.1): the fixed system prompt, `USER:` /
`ASSISTANT:` roles, `" "` after a user turn and `"</s>"` after an answer; loss on every answer and its `</s>`.

How the labels are found differs from LLaVA's code, on purpose: LLaVA tokenizes each round again and subtracts
token counts (§4.4), which breaks with tokenizer versions (the "tokenization mismatch" pitfall, §12.1). Here the
renderer records the character span of every supervised piece and a token is supervised iff its offsets overlap
one; that is the same set of tokens (the answer's leading-space piece included) for any fast tokenizer.

`<image>` is tokenized as LLaVA's `tokenizer_image_token` does (§4.3): the text is split on it, each chunk is
tokenized on its own, BOS only once at the start. Transformers' Llava then wants the image token repeated once per
visual feature, so each `<image>` becomes `image_seq_length` image-token ids, all labelled -100, and the length limit
counts them (§4.5).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from datamix.train.config import TrainError

IGNORE_INDEX = -100
IMAGE_TOKEN = "<image>"
VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the user's questions.")
SEP, SEP2 = " ", "</s>"
ROLES = {"human": "USER", "gpt": "ASSISTANT"}


@dataclass
class Encoded:
    text: str  # the rendered string, `<image>` kept as text
    input_ids: list[int]
    labels: list[int]
    n_images: int


def normalize_turns(conversations: list[dict], *, sample_id: str = "?") -> list[tuple[str, str]]:
    """(role, text) pairs that start with human and alternate; `<image>` moved to the front of its turn + `\\n`."""
    turns = [(t["from"], t["value"]) for t in conversations]
    while turns and turns[0][0] != "human":  # §4.4 step 1: LLaVA drops a leading gpt/system turn
        turns = turns[1:]
    for i, (role, _) in enumerate(turns):
        if role != ("human", "gpt")[i % 2]:
            raise TrainError(f"sample {sample_id}: turn {i} is {role!r}; turns must alternate human/gpt")
    # train.py:308-329: strip the token wherever it is, put it back as a prefix followed by a newline.
    return [(role, f"{IMAGE_TOKEN}\n{text.replace(IMAGE_TOKEN, '').strip()}".strip() if IMAGE_TOKEN in text
             else text) for role, text in turns]


def render(turns: list[tuple[str, str]], template: str, *, generation: bool = False) -> tuple[str, list[tuple]]:
    """The prompt string and the (start, end) character spans that are supervised.

    With `generation`, `turns` ends with the human turn and the string ends where the answer would start.
    """
    if template == "plain":
        return _render_plain(turns, generation)
    if template == "vicuna_v1":
        return _render_vicuna(turns, generation)
    raise TrainError(f"unknown template {template!r}; use plain or vicuna_v1")


def _render_plain(turns: list[tuple[str, str]], generation: bool) -> tuple[str, list[tuple]]:
    if not turns or IMAGE_TOKEN not in turns[0][1]:
        raise TrainError("the plain template (stage 1) needs an image sample")
    if generation:
        return IMAGE_TOKEN, []
    # LLaVA asserts exactly one exchange; a multi-round record keeps its first answer as the caption.
    text = IMAGE_TOKEN + turns[1][1] + "\n"
    return text, [(len(IMAGE_TOKEN), len(text))]


def _render_vicuna(turns: list[tuple[str, str]], generation: bool) -> tuple[str, list[tuple]]:
    text, spans = VICUNA_SYSTEM + SEP, []
    for i, (role, value) in enumerate(turns):
        text += ROLES[role] + ": "
        # The span starts at the space before the answer: generation starts right after "ASSISTANT:", so the
        # space (a piece of its own or merged into the first answer token, as SentencePiece does) is learnt too.
        start = len(text) - 1
        text += value + (SEP if i % 2 == 0 else SEP2)
        if role == "gpt":
            spans.append((start, len(text)))  # the answer and its closing </s>
    if generation:
        text += ROLES["gpt"] + ":"  # conversation.py: an empty last message renders as "ASSISTANT:"
    return text, spans


def encode(tokenizer, conversations: list[dict], *, template: str, image_seq_length: int, image_token_id: int,
           max_length: int, generation: bool = False, sample_id: str = "?") -> Encoded:
    """Render, tokenize and mask one conversation; the one entry point for training and for inference."""
    return encode_many(tokenizer, [(conversations, sample_id)], template=template, image_seq_length=image_seq_length,
                       image_token_id=image_token_id, max_length=max_length, generation=generation)[0]


def encode_many(tokenizer, samples: list[tuple[list[dict], str]], *, template: str, image_seq_length: int,
                image_token_id: int, max_length: int, generation: bool = False,
                cache: dict | None = None, image_tokens: list[list[int]] | None = None) -> list[Encoded]:
    """`encode` for several (conversations, sample_id) pairs; every text segment is still tokenized on its own.

    `cache` (a dict owned by the caller, for this tokenizer only) keeps the tokens of segments that end at an
    `<image>`: in vicuna_v1 that is the system prompt + "USER: ", the same in every image sample, so it is
    tokenized once instead of once per sample. A segment's tokens depend only on its text, so nothing changes.

    `image_tokens` (HD, hd.py) gives each sample's images their own token counts, in order, instead of
    `image_seq_length` for every image.
    """
    rendered = [_render_sample(conv, template, generation, sid) for conv, sid in samples]
    segments = [_segments(text, spans) for text, spans in rendered]
    pieces = iter(_cached_tokenize(tokenizer, segments, cache) if cache is not None
                  else _tokenize_chunks(tokenizer, [seg for segs in segments for seg in _marked(segs)]))
    counts = image_tokens or [None] * len(samples)
    return [_assemble(segs, spans, text, pieces, tokenizer.bos_token_id, tokenizer.eos_token_id,
                      image_seq_length if n is None else n, image_token_id, max_length, sid)
            for segs, (text, spans), (_, sid), n in zip(segments, rendered, samples, counts)]


def _render_sample(conversations: list[dict], template: str, generation: bool, sample_id: str) -> tuple[str, list]:
    turns = normalize_turns(conversations, sample_id=sample_id)
    if generation and turns and turns[-1][0] == "gpt":
        turns = turns[:-1]
    return render(turns, template, generation=generation)


def _segments(text: str, spans: list[tuple]) -> list[tuple[int, str, str]]:
    """(start, text, what follows: "image", "eos" or "end") of the pieces between control tokens.

    The control tokens are the `<image>` placeholders and the template's own `</s>`, which closes every
    vicuna_v1 answer span (plain spans end in a newline). Any other `</s>` is the data's and stays text.
    """
    eos_at = {end - len(SEP2) for _, end in spans if text.endswith(SEP2, 0, end)}
    out, start, pos = [], 0, 0
    while pos < len(text):
        if text.startswith(IMAGE_TOKEN, pos):
            out.append((start, text[start:pos], "image"))
            pos = start = pos + len(IMAGE_TOKEN)
        elif pos in eos_at:
            out.append((start, text[start:pos], "eos"))
            pos = start = pos + len(SEP2)
        else:
            nxt = [p for p in (text.find(IMAGE_TOKEN, pos + 1), min((e for e in eos_at if e > pos), default=-1))
                   if p != -1]
            pos = min(nxt) if nxt else len(text)
    out.append((start, text[start:], "end"))
    return out


def _marked(segments: list[tuple[int, str, str]]) -> list[str]:
    """The segments' texts, each one that follows the template's `</s>` marked so (see `_encode`)."""
    return [(AFTER_EOS + seg if k and segments[k - 1][2] == "eos" and seg else seg)
            for k, (_, seg, _) in enumerate(segments)]


def _assemble(segments: list[tuple[int, str, str]], spans: list[tuple], text: str, pieces, bos_id: int, eos_id: int,
              image_seq_length: int | list[int], image_token_id: int, max_length: int, sample_id: str) -> Encoded:
    """BOS, then each segment's tokens (taken in order from `pieces`), then the control token that ends it;
    `image_seq_length` is one count for every image or a list with one per image (HD)."""
    n_images = sum(f == "image" for _, _, f in segments)
    per_image = [image_seq_length] * n_images if isinstance(image_seq_length, int) else list(image_seq_length)
    if len(per_image) < n_images:
        raise TrainError(f"sample {sample_id}: {n_images} <image> token(s) but {len(per_image)} image(s)")
    counts = iter(per_image)
    ids, labels = [bos_id], [IGNORE_INDEX]
    for start, segment, follows in segments:
        seg_ids, seg_offsets = next(pieces)
        ids += seg_ids
        labels += _mask(seg_ids, seg_offsets, start, spans)
        if follows == "image":
            n = next(counts)
            ids += [image_token_id] * n
            labels += [IGNORE_INDEX] * n
        elif follows == "eos":  # inside its answer's span, so always supervised
            end = start + len(segment)
            ids.append(eos_id)
            labels += _mask([eos_id], [(0, len(SEP2))], end, spans)
    ids, labels = ids[:max_length], labels[:max_length]
    if ids.count(image_token_id) != sum(per_image[:n_images]):
        raise TrainError(f"sample {sample_id}: --model-max-length {max_length} cuts into the image tokens; "
                         f"it must exceed the prompt before the image plus {sum(per_image[:n_images])} image tokens")
    return Encoded(text=text, input_ids=ids, labels=labels, n_images=n_images)


CACHE_LIMIT = 1024  # segments kept per cache; the cache stops growing when full (it rarely has more than a few)


def _cached_tokenize(tokenizer, segments: list[list[tuple[int, str, str]]],
                     cache: dict) -> list[tuple[list[int], list]]:
    """`_tokenize_chunks` of all the segments in order, the ones before an `<image>` looked up in `cache`."""
    flat = [seg for segs in segments for seg in _marked(segs)]
    # cacheable: a non-empty segment before an <image> (an empty one costs nothing)
    keys = [follows == "image" and bool(seg) for segs in segments for _, seg, follows in segs]
    hit = [key and c in cache for c, key in zip(flat, keys)]
    fresh = iter(_tokenize_chunks(tokenizer, [c for c, h in zip(flat, hit) if not h]))
    out = [cache[c] if h else next(fresh) for c, h in zip(flat, hit)]
    for c, key, piece in zip(flat, keys, out):
        if key and len(cache) < CACHE_LIMIT:
            cache.setdefault(c, piece)
    return out


def _tokenize_chunks(tokenizer, chunks: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """(ids, character offsets) of each chunk, without special tokens; an empty chunk gives no tokens.

    Special-token text in a chunk (a literal `</s>` in an answer) is tokenized as the text it is, never as the
    control token (transformers' `split_special_tokens`); the template's own control tokens are inserted as ids.
    A chunk that starts after the template's `</s>` is tokenized as the tokenizer sees text after a special
    token: `</s>` + chunk, the `</s>` dropped again (a SentencePiece-style tokenizer adds no dummy prefix there).
    A chunk that holds special-token text itself cannot be tokenized so (its `</s>` would be the control token):
    it is tokenized on its own, so after an EOS a dummy-prefix tokenizer gives it a leading `▁` (rare data only).
    """
    specials = [t for t in getattr(tokenizer, "all_special_tokens", []) if t]
    plain = [not any(t in c for t in specials) for c in chunks]
    normal = [c for c, p in zip(chunks, plain) if c and p]
    literal = [c for c, p in zip(chunks, plain) if c and not p]
    done_normal = iter(_encode(tokenizer, normal, split_special=False))
    done_literal = iter(_encode(tokenizer, literal, split_special=True))
    return [([], []) if not c else next(done_normal) if p else next(done_literal) for c, p in zip(chunks, plain)]


AFTER_EOS = "\x00after-eos\x00"  # marks a chunk that follows the template's </s> (see `_segments`)


def _encode(tokenizer, chunks: list[str], *, split_special: bool) -> list[tuple[list[int], list]]:
    texts, strip = [], []
    for c in chunks:
        after = c.startswith(AFTER_EOS)
        c = c.removeprefix(AFTER_EOS)
        texts.append(SEP2 + c if after and not split_special else c)
        strip.append(after and not split_special)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and backend.truncation is None and backend.padding is None:
        # What the HF fast tokenizer's __call__ does in the end, minus its Python-side argument handling (which
        # cost more than the tokenization itself); with no truncation or padding set the result is the same.
        before = backend.encode_special_tokens
        backend.encode_special_tokens = split_special
        try:
            encodings = [backend.encode(t, add_special_tokens=False) for t in texts]
        finally:
            backend.encode_special_tokens = before
        out = [(e.ids, e.offsets) for e in encodings]
    else:
        enc = (tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True,
                         split_special_tokens=split_special) if texts else {})
        out = list(zip(enc.get("input_ids", []), enc.get("offset_mapping", [])))
    shift = len(SEP2)
    return [(list(ids[1:]), [(a - shift, b - shift) for a, b in offs[1:]]) if s else (list(ids), list(offs))
            for (ids, offs), s in zip(out, strip)]


def _mask(ids: list[int], offsets: list[tuple[int, int]], offset: int, spans: list[tuple]) -> list[int]:
    """A token keeps its id as label iff its character range overlaps a supervised span."""
    # Spans are disjoint and in order, so their ends ascend: the first span ending after a token's start is the
    # only one it can overlap. Spans are moved into chunk coordinates once instead of every token per span.
    starts, ends = [s - offset for s, _ in spans], [e - offset for _, e in spans]
    n, labels = len(spans), []
    for tok, (a, b) in zip(ids, offsets):
        k = bisect_right(ends, a)
        # zero-width offsets (some specials) still cover their position
        labels.append(tok if k < n and starts[k] < (b if b > a else a + 1) else IGNORE_INDEX)
    return labels


def supervised_spans(labels: list[int]) -> list[list[int]]:
    """The contiguous runs of supervised token ids (what the tests decode and compare with the answers)."""
    runs, current = [], []
    for tok in labels:
        if tok == IGNORE_INDEX:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(tok)
    return runs + ([current] if current else [])
