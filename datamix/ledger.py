"""The reject ledger: every input record that is not in the output is here, with its reason."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from datamix.jsonio import write_jsonl


def reason_code(reason: str) -> str:
    """The code of a rejection reason: the part before its first `:` (`missing_image: 000.jpg` -> `missing_image`)."""
    return reason.split(":", 1)[0].strip()


def tally_reasons(rejects: Iterable[dict]) -> dict[str, int]:
    """How many rejections per reason code, most frequent first (ties by code): every tally of reasons."""
    counts = Counter(reason_code(r["reason"]) for r in rejects)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass
class Ledger:
    """Counts records in, samples out and rejections by reason; keeps each rejection for the rejects file.

    `records_in` counts raw records (a VQAv2 question, a ShareGPT conversation); `samples_out` counts
    output rows, which may merge several records (all questions of one image become one conversation).
    `records_out` counts the raw records that made it into some output row, so that
    `records_in == records_out + rejected` always holds.
    """

    source: str
    records_in: int = 0
    records_out: int = 0
    samples_out: int = 0
    rejects: list[dict] = field(default_factory=list)

    def reject(self, original_id: object, reason: str, *, stage: str = "convert", file: str | None = None) -> None:
        entry = {"source": self.source, "id": None if original_id is None else str(original_id),
                 "stage": stage, "reason": reason}
        if file:
            entry["file"] = file
        self.rejects.append(entry)

    @property
    def rejected(self) -> int:
        return len(self.rejects)

    def by_reason(self) -> dict[str, int]:
        return tally_reasons(self.rejects)

    def balanced(self) -> bool:
        return self.records_in == self.records_out + self.rejected

    def write(self, path: str | Path) -> None:
        write_jsonl(Path(path), self.rejects)

    def summary(self) -> dict:
        return {"source": self.source, "records_in": self.records_in, "records_out": self.records_out,
                "samples_out": self.samples_out, "rejected": self.rejected, "rejected_by_reason": self.by_reason()}
