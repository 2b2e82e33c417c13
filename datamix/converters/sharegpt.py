"""ShareGPT: user-shared ChatGPT (and Bing, Bard) conversations, text only.

Provenance: https://huggingface.co/datasets/anon8231489123/ShareGPT_Vicuna_unfiltered
(`ShareGPT_V3_unfiltered_cleaned_split.json`, `HTML_cleaned_raw_dataset/sg_90k_part{1,2}*.json`); the same shape
is used by RyokoAI/ShareGPT52K, FastChat's `sharegpt_20230401_*` stages and derivatives such as MedicalGPT.
License: no clear one. The conversations were scraped from sharegpt.com and hold model outputs under the
providers' terms of use; check the dataset card you downloaded before redistributing.

Raw record (a JSON list of these, or JSON Lines; `id` and `model` may be missing or an int):

    {"id": "QWJhYvA_0", "model": "gpt4",
     "conversations": [{"from": "human", "value": "Summarize ..."}, {"from": "gpt", "value": "Sure, ..."}]}

Turns are normalised by `turns.normalize_turns` (roles, empty turns, leading non-human turns, merges).
Text is otherwise kept verbatim, on purpose:
- no HTML or "Copy code" cleaning: use an already-cleaned file (`*_html_cleaned.json`, V3) if you want one;
  rewriting text here would hide what the file holds;
- no language filter: LLaVA-1.5 kept multilingual ShareGPT data and credits it for its multilingual chat
  (LLaVA-1.5 paper §4.3), so non-English conversations are converted like any other.
A literal "<image>" in a text-only conversation is rejected by `schema.validate` (image_token_mismatch), since a
trainer would try to splice an image there.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from datamix.converters.base import RecordConverter
from datamix.converters.turns import Turn, normalize_turns, record_id
from datamix.schema import Sample


class ShareGPTRecord(msgspec.Struct):
    id: str | int | None = None
    conversations: list[Turn] | None = None
    model: str | None = None


class ShareGPT(RecordConverter):
    id = "sharegpt"
    description = "ShareGPT text conversations (ShareGPT_V3_unfiltered_cleaned_split.json, sg_90k_part*.json)"
    record_type = ShareGPTRecord

    def to_sample(self, record: ShareGPTRecord, index: int, file: Path) -> Sample | str:
        if not record.conversations:
            return "no_conversations: record has no 'conversations' turns"
        normalized = normalize_turns((t.role, t.value) for t in record.conversations)
        if isinstance(normalized, str):
            return normalized
        rid = record_id(record.id, *(t.value for t in record.conversations))
        meta = {"original_id": rid, "file": file.name, **normalized.counts()}
        if record.model:
            meta["model"] = record.model
        return Sample(id=f"{self.id}/{rid}", source=self.id, task="text", images=[],
                      conversations=normalized.turns, meta=meta)

