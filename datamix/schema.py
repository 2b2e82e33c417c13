"""The unified schema: one row is one training conversation.

| field           | type                        | meaning                                              |
|-----------------|-----------------------------|------------------------------------------------------|
| `id`            | str                         | `<source>/<original id>[#k]`, unique within a mix     |
| `source`        | str                         | converter id (`vqav2`, `gqa`, `sharegpt`, `llava`)    |
| `task`          | str                         | what the format-prompt table keys on (see `TASKS`)   |
| `images`        | list[str]                   | paths relative to the source's image root            |
| `conversations` | list[{from, value}]         | roles `human`, `gpt`, optional leading `system`      |
| `meta`          | dict (JSON string on disk)  | source extras: all answers, original ids, prompt ... |

`validate` is the single place that holds the invariants; a violation is a rejection reason, never a crash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

IMAGE_TOKEN = "<image>"
TASKS = ("vqa_short", "mcq", "caption", "grounding", "conversation", "text")
ROLES = ("human", "gpt", "system")
# Characters that render as nothing; text made only of these and whitespace is empty. str.strip keeps them.
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
# Python's whitespace (str.isspace), spelled out so that polars expressions can strip exactly the same set.
WHITESPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200b))) + (
    "\u2028\u2029\u202f\u205f\u3000")
BLANK_CHARS = WHITESPACE + ZERO_WIDTH
# A path is refused if empty, absolute (`/`, `\\`, a drive letter), holding a `..` segment anywhere (even
# `a/../b`: converters write plain relative paths, and one that climbs is never what a source file means)
# or a NUL (no file system can open it). `qa.image_path_check` applies the same pattern to polars columns
# (Rust regex syntax: `\z` is the end of the text, Python's `\Z`).
BAD_IMAGE_PATH = r"(?s)\A\z|\A[/\\]|\A.:|(?:\A|[/\\])\.\.(?:[/\\]|\z)|\x00"
_BAD_IMAGE_PATH = re.compile(BAD_IMAGE_PATH.replace(r"\z", r"\Z"))


def is_blank(text: object) -> bool:
    """True for anything but a string with a visible character: None, "", whitespace, zero-width characters."""
    return not isinstance(text, str) or not text.strip(BLANK_CHARS)


@dataclass(slots=True)
class Sample:
    id: str
    source: str
    task: str
    images: list[str]
    conversations: list[dict[str, str]]
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "task": self.task,
            "images": list(self.images),
            "conversations": [{"from": t["from"], "value": t["value"]} for t in self.conversations],
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Sample:
        return cls(
            id=row["id"],
            source=row["source"],
            task=row["task"],
            images=list(row["images"] or []),
            conversations=[{"from": t["from"], "value": t["value"]} for t in row["conversations"]],
            meta=dict(row.get("meta") or {}),
        )


def validate(sample: Sample) -> str | None:
    """Return None for a valid sample, else a short reason code (`snake_case: detail`)."""
    if not sample.id or not sample.source:
        return "missing_id"
    if sample.task not in TASKS:
        return f"unknown_task: {sample.task!r}"
    reason = _check_turns(sample.conversations)
    if reason:
        return reason
    n_tokens = sum(t["value"].count(IMAGE_TOKEN) for t in sample.conversations)
    if n_tokens != len(sample.images):
        return f"image_token_mismatch: {n_tokens} <image> tokens for {len(sample.images)} images"
    for path in sample.images:
        reason = _check_image_path(path)
        if reason:
            return reason
    return None


def _check_turns(turns: list[dict[str, str]]) -> str | None:
    if not turns:
        return "empty_conversation"
    body = turns[1:] if turns[0]["from"] == "system" else turns
    if not body:
        return "empty_conversation"
    for i, turn in enumerate(body):
        expected = "human" if i % 2 == 0 else "gpt"
        if turn["from"] != expected:
            return f"bad_role_order: turn {i} is {turn['from']!r}, expected {expected!r}"
        if is_blank(turn["value"]):
            return f"empty_turn: turn {i}"
    if body[-1]["from"] != "gpt":
        return "ends_with_human"
    return None


def _check_image_path(path: object) -> str | None:
    if not isinstance(path, str) or _BAD_IMAGE_PATH.search(path):
        return f"bad_image_path: {path!r} is not a plain relative path inside the image root"
    return None
