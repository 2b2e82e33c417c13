"""Role and turn normalisation shared by the ShareGPT and LLaVA converters.

Both sources are lists of `{"from": role, "value": text}` turns written by scrapers and generators, so both
meet the same mess (leading non-human turns, odd role names, empty turns, trailing human turns): assistant turns first, role names other than
human/gpt, empty or zero-width turns, the same speaker twice in a row, a conversation ending on the user.
`normalize_turns` applies one policy to all of it and returns turns that satisfy `schema.validate`'s
alternation rule, or a reason string to reject the record:

1. roles are mapped to `human`/`gpt`/`system` (the vLLM mapping); any other role rejects the record;
2. blank turns are dropped: empty, whitespace, zero-width only, or the "EmptyMarkdownContent" placeholder;
3. turns before the first human turn are dropped, except the first `system` turn among them, which stays as
   turn 0; every other system turn is dropped (the schema only allows a leading one);
4. consecutive turns of one role are merged with a blank line (keeps every word instead of dropping a record);
5. a trailing human turn is dropped (it has no answer to train on), and a record with no human turn answered
   by a gpt turn left is rejected.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from datamix.converters.base import content_hash
from datamix.schema import BLANK_CHARS, is_blank

ROLE_MAP: dict[str, str] = {
    "human": "human", "user": "human",
    "gpt": "gpt", "assistant": "gpt", "bing": "gpt", "chatgpt": "gpt", "bard": "gpt",
    "system": "system",
}
# The value ShareGPT scrapes hold where a turn's markdown could not be captured.
EMPTY_PLACEHOLDER = "EmptyMarkdownContent"
MERGE_SEPARATOR = "\n\n"


class Turn(msgspec.Struct):
    """One raw turn; both keys optional so that a bad turn is a rejection reason, not a decode error."""

    role: str | None = msgspec.field(default=None, name="from")
    value: str | None = None


@dataclass(slots=True)
class Normalized:
    turns: list[dict[str, str]]
    dropped: int = 0
    merged: int = 0

    def counts(self) -> dict[str, int]:
        """The non-zero change counts, for `Sample.meta`."""
        counts = {"dropped_turns": self.dropped, "merged_turns": self.merged}
        return {key: n for key, n in counts.items() if n}


def map_role(role: object) -> str | None:
    """`human`, `gpt` or `system`, or None for a role we do not know (case and spaces are forgiven)."""
    return ROLE_MAP.get(role.strip().lower()) if isinstance(role, str) else None


def is_blank_turn(value: object) -> bool:
    """Empty as `schema.is_blank` says (whitespace, zero-width), or the scrapers' empty placeholder."""
    return is_blank(value) or value.strip(BLANK_CHARS) == EMPTY_PLACEHOLDER


def record_id(raw_id: object, *content: object) -> str:
    """The record's id as a string; a record without one (MedicalGPT) gets a stable hash of its content."""
    if raw_id is not None and str(raw_id).strip():
        return str(raw_id)
    return content_hash(*(part if isinstance(part, str) else "" for part in content))


def normalize_turns(raw: Iterable[tuple[object, object]]) -> Normalized | str:
    """Normalise `(role, value)` pairs as the module docstring says; a string return is a rejection reason."""
    pairs = list(raw)
    turns = []
    for role, value in pairs:
        mapped = map_role(role)
        if mapped is None:
            return f"unknown_role: {role!r}"
        if not is_blank_turn(value):
            turns.append({"from": mapped, "value": value})
    turns, merged = _merge_runs(_place_system(turns))
    if turns and turns[-1]["from"] == "human":
        turns.pop()
    body = turns[1:] if turns and turns[0]["from"] == "system" else turns
    if len(body) < 2:
        return f"no_usable_exchange: no human turn answered by a gpt turn among {len(pairs)} turns"
    # Every input turn is now either an output turn, merged into one, or dropped.
    return Normalized(turns, dropped=len(pairs) - len(turns) - merged, merged=merged)


def _place_system(turns: list[dict[str, str]]) -> list[dict[str, str]]:
    """Drop what precedes the first human turn but its first system turn, which leads; drop later system turns."""
    first_human = next((i for i, t in enumerate(turns) if t["from"] == "human"), len(turns))
    system = next((t for t in turns[:first_human] if t["from"] == "system"), None)
    body = [t for t in turns[first_human:] if t["from"] != "system"]
    return [system, *body] if system else body


def _merge_runs(turns: list[dict[str, str]]) -> tuple[list[dict[str, str]], int]:
    out: list[dict[str, str]] = []
    merged = 0
    for turn in turns:
        if out and out[-1]["from"] == turn["from"]:
            out[-1]["value"] += MERGE_SEPARATOR + turn["value"]
            merged += 1
        else:
            out.append(dict(turn))
    return out, merged
