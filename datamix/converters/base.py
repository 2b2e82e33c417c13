"""What every converter is, and the shared machinery of record-by-record converters."""

from __future__ import annotations

import gc
import hashlib
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from datamix.converters.options import NoOptions, OptionSpec, option_problems, option_specs, parse_options
from datamix.errors import ConverterError
from datamix.inputs import JSON_SUFFIXES
from datamix.jsonio import convert_record, iter_records
from datamix.ledger import Ledger
from datamix.progress import progress
from datamix.prompts import PromptPolicy, apply_format_prompt
from datamix.schema import Sample, validate

BATCH = 4096


class ConvertOptions:
    """What one conversion is asked for: the format-prompt policy, which every source has, and the
    converter's own options as raw values (strings from the command line, scalars from a recipe),
    checked against the options that converter declares when it is built."""

    def __init__(self, format_prompt: PromptPolicy | str = PromptPolicy.first_turn, **values: Any):
        self.format_prompt = PromptPolicy(format_prompt)
        self.values = dict(values)

    def __repr__(self) -> str:
        return f"ConvertOptions(format_prompt={self.format_prompt.value!r}, values={self.values!r})"


class Converter(ABC):
    """Turns the official files of one source into batches of unified-schema rows.

    A batch is either a pyarrow Table already in the unified schema (vectorised converters, which then
    guarantee the invariants by construction) or a list of Samples, which the runner validates.
    Every input record must end up counted in the ledger: as output or as a rejection with a reason.
    """

    id: ClassVar[str]
    description: ClassVar[str]
    # The converter's own options: a frozen dataclass of `options.option(...)` fields (default, choices, help).
    Options: ClassVar[type] = NoOptions
    # What a folder given as input contributes (a refs pickle is `.p`); single files are always taken.
    input_suffixes: ClassVar[tuple[str, ...]] = JSON_SUFFIXES

    def __init__(self, options: ConvertOptions | None = None):
        options = options or ConvertOptions()
        problems = option_problems(self.Options, options.values)
        if problems:
            raise ConverterError(f"{self.id}: " + "; ".join(problems))
        self.format_prompt = options.format_prompt
        self.options = parse_options(self.Options, options.values)

    @classmethod
    def option_specs(cls) -> tuple[OptionSpec, ...]:
        return option_specs(cls.Options)

    @abstractmethod
    def convert(self, files: list[Path], ledger: Ledger) -> Iterator[pa.Table | list[Sample]]:
        """Yield output batches; count records and rejections in `ledger`."""

    def prompt_policy(self, sample: Sample) -> PromptPolicy:
        """The format-prompt policy for one sample; a converter may exempt records the policy must not touch."""
        return self.format_prompt

    def finish(self, sample: Sample) -> str | None:
        """Apply the format-prompt policy to a built Sample and validate it; the reason when it is invalid."""
        apply_format_prompt(sample, self.prompt_policy(sample))
        return validate(sample)


class RecordConverter(Converter):
    """A converter whose files are JSON lists (or JSON Lines) of independent records.

    Subclasses give the msgspec `record_type` and `to_sample`, which returns a Sample or a reason string.
    This class counts, applies the format-prompt policy, validates and makes ids unique.
    """

    record_type: ClassVar[Any]
    required_key: ClassVar[str] = "conversations"

    @abstractmethod
    def to_sample(self, record: Any, index: int, file: Path) -> Sample | str:
        """Convert one raw record; return a reason string to reject it."""

    def convert(self, files: list[Path], ledger: Ledger) -> Iterator[list[Sample]]:
        self._seen_ids: Counter[str] = Counter()
        batch: list[Sample] = []
        for file in files:
            records = iter_records(file, self.record_type, self.required_key)
            for index, record, reason in progress(records, f"{self.id} {file.name}", unit="rec"):
                ledger.records_in += 1
                sample = reason or self.to_sample(record, index, file)
                if isinstance(sample, str):
                    ledger.reject(original_id(record, index), sample, file=file.name)
                    continue
                invalid = self.finish(sample)
                if invalid:
                    ledger.reject(sample.meta.get("original_id") or original_id(record, index), invalid,
                                  file=file.name)
                    continue
                sample.id = self._unique(sample.id)
                ledger.records_out += 1
                batch.append(sample)
                if len(batch) == BATCH:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def _unique(self, sample_id: str) -> str:
        """Repeated original ids (llava_instruct reuses the image id per subset) get `#1`, `#2`, ... in input order."""
        n = self._seen_ids[sample_id]
        self._seen_ids[sample_id] += 1
        return sample_id if n == 0 else f"{sample_id}#{n}"


def original_id(record: Any, index: int) -> str:
    """The id a rejection is filed under: the record's own id, else its position in the file.

    `record` is a typed record, or the raw dict of one that did not fit its type, or None.
    """
    rid = record.get("id") if isinstance(record, dict) else getattr(record, "id", None)
    if isinstance(rid, (str, int)) and not isinstance(rid, bool) and str(rid).strip():
        return str(rid)
    return f"#{index}"


def content_hash(*parts: str) -> str:
    """A stable id for records that have none: the same content gives the same id on every machine."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return f"h{digest[:16]}"


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of small objects are decoded.

    Decoding allocates containers (structs, lists) faster than they die, so the collector runs full
    generations over them again and again: on a 207K-book OCR-VQA file that is most of the decode time
    (measured by bench/academic_bench.py). Nothing decoded here holds cycles; the collector resumes after.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def fitting_records(entries: Iterable[tuple[Any, Any]], type_: Any, ledger: Ledger,
                    file_name: str) -> list[tuple[Any, Any]]:
    """(id, raw record) pairs in file order -> (id, typed record) for those that fit `type_`.

    The slow path of the typed readers, taken when a whole-file decode found a record that does not fit:
    each misfit is rejected (and counted as a record) under its own id, or its position when it has none.
    """
    good = []
    for position, (record_id, record) in enumerate(entries):
        value, reason = convert_record(record, type_)
        if reason:
            ledger.records_in += 1
            named = record_id is not None and str(record_id).strip()
            ledger.reject(str(record_id) if named else f"#{position}", reason, file=file_name)
        else:
            good.append((record_id, value))
    return good
