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

import posixpath
from dataclasses import dataclass, field
from typing import Any

IMAGE_TOKEN = "<image>"
TASKS = ("vqa_short", "mcq", "caption", "grounding", "conversation", "text")
ROLES = ("human", "gpt", "system")


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
        if not isinstance(turn["value"], str) or not turn["value"].strip():
            return f"empty_turn: turn {i}"
    if body[-1]["from"] != "gpt":
        return "ends_with_human"
    return None


def _check_image_path(path: str) -> str | None:
    if not path or path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":"):
        return f"bad_image_path: {path!r} is not a relative path"
    normalized = posixpath.normpath(path.replace("\\", "/"))
    if normalized == ".." or normalized.startswith("../"):
        return f"bad_image_path: {path!r} leaves the image root"
    return None
