"""LLaVA conversation files: LLaVA-Instruct-150K and its subsets, the LLaVA-1.5 665K mix, LCS-558K.

Provenance: https://github.com/haotian-liu/LLaVA/blob/main/docs/Data.md
- https://huggingface.co/datasets/liuhaotian/LLaVA-Instruct-150K: `llava_instruct_150k.json`,
  `conversation_58k.json`, `detail_23k.json`, `complex_reasoning_77k.json`, `llava_v1_5_mix665k.json`;
- https://huggingface.co/datasets/liuhaotian/LLaVA-Pretrain: `blip_laion_cc_sbu_558k.json` (stage 1).
License: LLaVA-Instruct is CC BY 4.0 and must also abide by OpenAI's terms of use (GPT-4 generated); the 665K
mix re-distributes academic sets (VQAv2, GQA, OCR-VQA, TextCaps, VG, RefCOCO, ...) under their own licenses;
LCS-558K images and captions come from LAION/CC/SBU and BLIP, with their licenses. Check each dataset card.

Raw record (a JSON list of these; `image` may be a string, a list or absent, `id` a string or an int):

    {"id": "000000033471", "image": "coco/train2017/000000033471.jpg",
     "conversations": [{"from": "human", "value": "<image>\\nWhat are the colors of the bus in the image?"},
                       {"from": "gpt", "value": "The bus in the image is white and red."}]}

Each turn's `<image>` tokens are moved to its start as "<image>\\n", as LLaVA's `preprocess_multimodal` does
(files put the token first, last or glued to the text). Turns are normalised by `turns.normalize_turns`.
Image paths are kept as given, relative to the LLaVA image folder (`playground/data` for the 665K mix).
`classify` names each record's origin and task from its image path and prompts (path prefixes, then prompts; per-source counts of LLaVA issues #657 and #702).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import msgspec

from datamix.converters.base import RecordConverter
from datamix.converters.turns import Turn, normalize_turns, record_id
from datamix.prompts import PromptPolicy
from datamix.schema import IMAGE_TOKEN, Sample


class LlavaRecord(msgspec.Struct):
    id: str | int | None = None
    image: str | list[str] | None = None
    conversations: list[Turn] | None = None
    model: str | None = None


class Rule(NamedTuple):
    image: str  # regex matched at the start of the first image path; text-only records have the path ""
    phrase: str | None  # ... and, if set, a text some human turn must contain
    turns: int | None  # ... and, if set, the exact number of turns
    origin: str
    task: str


# First match wins. The 665K mix is told apart by image folder, and its five COCO sources by their prompts.
RULES: tuple[Rule, ...] = (
    Rule(r"\Z", None, None, "sharegpt", "text"),
    Rule(r"gqa/", None, None, "gqa", "vqa_short"),
    Rule(r"ocr_vqa/", None, None, "ocrvqa", "vqa_short"),
    Rule(r"textvqa/", None, None, "textcaps", "caption"),
    Rule(r"vg/", None, None, "vg", "grounding"),
    Rule(r"coco/", "the option's letter from the given choices directly", None, "aokvqa", "mcq"),
    Rule(r"coco/", "short description for this region", None, "refcoco", "grounding"),
    Rule(r"coco/", "bounding box coordinate of the region", None, "refcoco", "grounding"),
    Rule(r"coco/", "single word or phrase", None, "vqav2_okvqa", "vqa_short"),
    Rule(r"coco/", None, None, "llava_instruct", "conversation"),
    Rule(r"\d{12}\.jpg\Z", None, None, "llava_instruct", "conversation"),  # llava_instruct_150k: bare COCO names
    Rule(r"\d{5}/\d+\.jpg\Z", None, 2, "lcs558k", "caption"),  # blip_laion_cc_sbu_558k: <5-digit shard>/<id>.jpg
    Rule(r"GCC_train_\d+\.jpg\Z", None, 2, "cc3m", "caption"),  # LLaVA's CC3M-595K chat.json
)
# Stage-1 caption sets never carry a response-format prompt: LLaVA's `plain` template discards the human
# turn, and their prompt pool already asks for a brief description.
UNPROMPTED_ORIGINS = frozenset({"lcs558k", "cc3m"})
# A LLaVA-shaped file from elsewhere is still converted, as a generic conversation.
FALLBACK = ("other", "conversation")


def classify(images: list[str], turns: list[dict[str, str]]) -> tuple[str, str]:
    """(origin, task) of a record, by the first rule of RULES that matches."""
    path = images[0] if images else ""
    human = [t["value"] for t in turns if t["from"] == "human"]
    for rule in RULES:
        if (re.match(rule.image, path)
                and (rule.phrase is None or any(rule.phrase in text for text in human))
                and (rule.turns is None or rule.turns == len(turns))):
            return rule.origin, rule.task
    return FALLBACK


class Llava(RecordConverter):
    id = "llava"
    description = "LLaVA conversation files (llava_instruct_150k, llava_v1_5_mix665k, blip_laion_cc_sbu_558k)"
    record_type = LlavaRecord

    def prompt_policy(self, sample: Sample) -> PromptPolicy:
        if sample.meta.get("origin") in UNPROMPTED_ORIGINS:
            return PromptPolicy.none
        return self.format_prompt

    def to_sample(self, record: LlavaRecord, index: int, file: Path) -> Sample | str:
        if not record.conversations:
            return "no_conversations: record has no 'conversations' turns"
        images = as_images(record.image)
        pairs = [(t.role, move_image_tokens(t.value)) for t in record.conversations]
        # Checked on the raw turns, so that a token in a turn the normalisation drops is reported here too.
        n_tokens = sum(value.count(IMAGE_TOKEN) for _, value in pairs if isinstance(value, str))
        if n_tokens != len(images):
            return f"image_token_mismatch: {n_tokens} <image> tokens for {len(images)} images"
        normalized = normalize_turns(pairs)
        if isinstance(normalized, str):
            return normalized
        origin, task = classify(images, normalized.turns)
        rid = record_id(record.id, *images, *(t.value for t in record.conversations))
        meta = {"origin": origin, "original_id": rid, "file": file.name, **normalized.counts()}
        if record.model:
            meta["model"] = record.model
        return Sample(id=f"{self.id}/{rid}", source=self.id, task=task, images=images,
                      conversations=normalized.turns, meta=meta)


def as_images(image: str | list[str] | None) -> list[str]:
    """LLaVA writes one path as a string; LLaMA-Factory-style files use a list; text-only records have none."""
    if image is None:
        return []
    return [image] if isinstance(image, str) else list(image)


def move_image_tokens(value: object) -> object:
    """Put each `<image>` of a turn at its start, one "<image>\\n" per token, and strip the rest of the text."""
    if not isinstance(value, str) or IMAGE_TOKEN not in value:
        return value
    rest = value.replace(IMAGE_TOKEN, "").strip()
    return (IMAGE_TOKEN + "\n") * value.count(IMAGE_TOKEN) + rest
