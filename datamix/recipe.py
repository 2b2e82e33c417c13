"""Recipes (`recipes/*.yaml`): what goes into a mix, loaded into frozen dataclasses and validated whole.

Every problem in a recipe is reported at once, before any work, one line each, naming the recipe file,
the source and the fix. Paths are relative to the recipe file (or absolute); `${VAR}` and
`${VAR:-default}` expand from the environment, so shipped recipes name a data root the user sets.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from datamix.errors import DatamixError, RecipeError
from datamix.inputs import JSON_SUFFIXES, expand_inputs
from datamix.prompts import PromptPolicy

TOP_KEYS = ("name", "description", "seed", "sources", "shards", "max_reject_ratio", "max_image_pixels")
SOURCE_KEYS = ("name", "converter", "parquet", "inputs", "image_root", "ratio", "count", "repeat",
               "format_prompt", "options", "max_reject_ratio", "planned", "note")
SHARD_KEYS = ("max_samples", "max_bytes")
AMOUNT_KEYS = ("ratio", "count", "repeat")
SIZE_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's decompression-bomb threshold


@dataclass(frozen=True)
class Amount:
    kind: str  # ratio | count | repeat
    value: float


@dataclass(frozen=True)
class SourceSpec:
    name: str
    amount: Amount
    converter: str | None = None  # raw inputs through a converter ...
    inputs: tuple[Path, ...] = ()
    parquet: Path | None = None  # ... or an already converted Parquet file
    image_root: Path | None = None
    format_prompt: PromptPolicy = PromptPolicy.first_turn
    options: tuple[tuple[str, str], ...] = ()
    max_reject_ratio: float | None = None
    planned: bool = False  # listed for completeness; its converter does not exist yet
    note: str = ""


@dataclass(frozen=True)
class ShardSpec:
    max_samples: int = 10_000
    max_bytes: int = 10**9


@dataclass(frozen=True)
class Recipe:
    path: Path
    name: str
    seed: int
    sources: tuple[SourceSpec, ...]
    shards: ShardSpec = field(default_factory=ShardSpec)
    max_reject_ratio: float = 0.01
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    description: str = ""

    def budget(self, source: SourceSpec) -> float:
        return self.max_reject_ratio if source.max_reject_ratio is None else source.max_reject_ratio

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe for the manifest, paths relative to the recipe folder where possible."""
        base = self.path.parent
        data = asdict(self)
        data["path"] = self.path.name
        for source, spec in zip(data["sources"], self.sources):
            source["inputs"] = [_portable(p, base) for p in spec.inputs]
            source["parquet"] = _portable(spec.parquet, base) if spec.parquet else None
            source["image_root"] = _portable(spec.image_root, base) if spec.image_root else None
            source["format_prompt"] = spec.format_prompt.value
            source["options"] = dict(spec.options)
        return json.loads(json.dumps(data))  # plain JSON types (lists, not tuples), as the manifest reads back


def _portable(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path, base).replace(os.sep, "/")
    except ValueError:  # another drive on Windows
        return str(path)


class _Errors:
    """Collects every problem so the user fixes the recipe in one round."""

    def __init__(self, path: Path):
        self.path, self.lines = path, []

    def add(self, where: str, message: str) -> None:
        self.lines.append(f"{self.path}: {where}: {message}")

    def raise_if_any(self) -> None:
        if self.lines:
            raise RecipeError("\n".join(self.lines) if len(self.lines) == 1 else
                              f"{len(self.lines)} problems in the recipe:\n  " + "\n  ".join(self.lines))


def load_recipe(path: str | Path, *, check_files: bool = True) -> Recipe:
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: no such recipe file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}") from None
    errors = _Errors(path)
    if not isinstance(raw, dict):
        errors.add("top level", "expected a mapping with name, seed and sources")
        errors.raise_if_any()
    _unknown_keys(raw, TOP_KEYS, "top level", errors)
    name = _required(raw, "name", str, "top level", errors)
    if isinstance(name, str) and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        errors.add("name", f"{name!r} must be letters, digits, '.', '_' or '-' (it names the shard files)")
    seed = _required(raw, "seed", int, "top level", errors)
    sources = _sources(raw.get("sources"), path.parent, errors, check_files)
    shards = _shards(raw.get("shards") or {}, errors)
    budget = _fraction(raw.get("max_reject_ratio", 0.01), "max_reject_ratio", "top level", errors)
    max_pixels = raw.get("max_image_pixels", DEFAULT_MAX_PIXELS)
    if not isinstance(max_pixels, int) or max_pixels <= 0:
        errors.add("max_image_pixels", f"must be a positive integer, got {max_pixels!r}")
    errors.raise_if_any()
    return Recipe(path=path.resolve(), name=name, seed=seed, sources=tuple(sources), shards=shards,
                  max_reject_ratio=budget, max_image_pixels=max_pixels, description=raw.get("description", ""))


def _unknown_keys(mapping: dict, allowed: tuple[str, ...], where: str, errors: _Errors) -> None:
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(allowed)}"
            errors.add(where, f"unknown key {key!r}{hint}")


def _required(mapping: dict, key: str, type_: type, where: str, errors: _Errors) -> Any:
    value = mapping.get(key)
    if value is None:
        errors.add(where, f"missing required key {key!r}")
    elif not isinstance(value, type_) or isinstance(value, bool):
        errors.add(where, f"{key!r} must be {type_.__name__}, got {value!r}")
    return value


def _fraction(value: Any, key: str, where: str, errors: _Errors) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        errors.add(where, f"{key} must be a number in [0, 1], got {value!r}")
        return 0.0
    return float(value)


def parse_size(value: Any) -> int | None:
    """`1GB`, `500 MB`, `2GiB` or a plain integer number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]*)\s*", str(value))
    if not match or match.group(2).upper() not in SIZE_UNITS | {"": 1}:
        return None
    return int(float(match.group(1)) * SIZE_UNITS.get(match.group(2).upper(), 1))


def _shards(raw: Any, errors: _Errors) -> ShardSpec:
    if not isinstance(raw, dict):
        errors.add("shards", "expected a mapping like {max_samples: 10000, max_bytes: 1GB}")
        return ShardSpec()
    _unknown_keys(raw, SHARD_KEYS, "shards", errors)
    max_samples = raw.get("max_samples", ShardSpec.max_samples)
    if not isinstance(max_samples, int) or isinstance(max_samples, bool) or max_samples <= 0:
        errors.add("shards", f"max_samples must be a positive integer, got {max_samples!r}")
        max_samples = ShardSpec.max_samples
    max_bytes = parse_size(raw.get("max_bytes", ShardSpec.max_bytes))
    if not max_bytes or max_bytes <= 0:
        errors.add("shards", f"max_bytes must be a size like 1GB or 500MB, got {raw.get('max_bytes')!r}")
        max_bytes = ShardSpec.max_bytes
    return ShardSpec(max_samples=max_samples, max_bytes=max_bytes)


def expand(value: str, where: str, errors: _Errors) -> str | None:
    """Expand `${VAR}` and `${VAR:-default}`; an unset variable without a default is an error."""
    missing = []

    def substitute(match: re.Match) -> str:
        var, default = match.group(1), match.group(3)
        if var in os.environ:
            return os.environ[var]
        if default is not None:
            return default
        missing.append(var)
        return ""

    expanded = re.sub(r"\$\{(\w+)(:-([^}]*))?\}", substitute, value)
    for var in missing:
        errors.add(where, f"environment variable {var} is not set; export {var}=<folder holding the raw data>")
    return None if missing else os.path.expanduser(expanded)


def _path(value: Any, base: Path, where: str, errors: _Errors) -> Path | None:
    if not isinstance(value, str) or not value:
        errors.add(where, f"expected a path, got {value!r}")
        return None
    expanded = expand(value, where, errors)
    return None if expanded is None else (base / expanded)


def _sources(raw: Any, base: Path, errors: _Errors, check_files: bool) -> list[SourceSpec]:
    if not isinstance(raw, list) or not raw:
        errors.add("sources", "expected a non-empty list of sources")
        return []
    specs, seen = [], set()
    for index, item in enumerate(raw):
        where = f"source #{index + 1}"
        if not isinstance(item, dict):
            errors.add(where, "expected a mapping with name, converter (or parquet), inputs and an amount")
            continue
        if isinstance(item.get("name"), str):
            where = f"source {item['name']!r} (#{index + 1})"
            if item["name"] in seen:
                errors.add(where, "duplicate source name; names must be unique in a recipe")
            seen.add(item["name"])
        spec = _source(item, base, where, errors, check_files)
        if spec:
            specs.append(spec)
    return specs


def _source(item: dict, base: Path, where: str, errors: _Errors, check_files: bool) -> SourceSpec | None:
    from datamix.converters import CONVERTERS
    from datamix.converters.options import option_problems

    _unknown_keys(item, SOURCE_KEYS, where, errors)
    name = _required(item, "name", str, where, errors)
    amount = _amount(item, where, errors)
    planned = bool(item.get("planned", False))
    converter, parquet = item.get("converter"), item.get("parquet")
    if (converter is None) == (parquet is None):
        errors.add(where, "give exactly one of 'converter' (with 'inputs') or 'parquet' (an already converted file)")
    elif converter is not None and converter not in CONVERTERS and not planned:
        errors.add(where, f"unknown converter {converter!r}; known converters: {', '.join(sorted(CONVERTERS))} "
                          "(mark the source 'planned: true' to keep it listed until its converter exists)")
    policy = item.get("format_prompt", PromptPolicy.first_turn.value)
    if policy not in [p.value for p in PromptPolicy]:
        errors.add(where, f"format_prompt must be one of {', '.join(p.value for p in PromptPolicy)}, got {policy!r}")
        policy = PromptPolicy.first_turn.value
    options = item.get("options") or {}
    if not isinstance(options, dict):
        errors.add(where, "options must be a mapping, e.g. {answer: most_common}")
        options = {}
    if isinstance(converter, str) and converter in CONVERTERS:  # each converter declares and checks its own options
        for problem in option_problems(CONVERTERS[converter].Options, options):
            errors.add(f"{where} options", f"converter {converter}: {problem}")
    budget = item.get("max_reject_ratio")
    if budget is not None:
        budget = _fraction(budget, "max_reject_ratio", where, errors)
    inputs, parquet_path, image_root = _source_paths(item, base, where, errors, check_files and not planned)
    if name is None or amount is None:
        return None
    return SourceSpec(name=name, amount=amount, converter=converter, inputs=inputs, parquet=parquet_path,
                      image_root=image_root, format_prompt=PromptPolicy(policy),
                      options=tuple(sorted((k, str(v)) for k, v in options.items())),
                      max_reject_ratio=budget, planned=planned, note=str(item.get("note", "")))


def _source_paths(item: dict, base: Path, where: str, errors: _Errors, check: bool):
    inputs: tuple[Path, ...] = ()
    if item.get("converter") is not None:
        raw_inputs = item.get("inputs")
        if isinstance(raw_inputs, str):
            raw_inputs = [raw_inputs]
        if not isinstance(raw_inputs, list) or not raw_inputs:
            errors.add(where, "missing 'inputs': the official files, folders or globs to convert")
        else:
            patterns = [p for p in (_path(v, base, where, errors) for v in raw_inputs) if p is not None]
            suffixes = _suffixes(item.get("converter"))  # a converter may read more than JSON (refs pickles)
            inputs = _existing_inputs(patterns, suffixes, where, errors) if check else tuple(patterns)
    parquet = _path(item["parquet"], base, where, errors) if item.get("parquet") is not None else None
    if check and parquet is not None and not parquet.is_file():
        errors.add(where, f"parquet file {parquet} does not exist; run `datamix convert` first")
    image_root = _path(item["image_root"], base, where, errors) if item.get("image_root") is not None else None
    if check and image_root is not None and not image_root.is_dir():
        errors.add(where, f"image_root {image_root} is not a folder")
    return inputs, parquet, image_root


def _suffixes(converter: object) -> tuple[str, ...]:
    from datamix.converters import CONVERTERS

    cls = CONVERTERS.get(converter) if isinstance(converter, str) else None
    return cls.input_suffixes if cls else JSON_SUFFIXES


def _existing_inputs(patterns: list[Path], suffixes: tuple[str, ...], where: str, errors: _Errors) -> tuple[Path, ...]:
    try:
        return tuple(expand_inputs(patterns, suffixes))
    except DatamixError as exc:
        errors.add(where, f"input {exc}")
        return ()


def _amount(item: dict, where: str, errors: _Errors) -> Amount | None:
    given = [key for key in AMOUNT_KEYS if key in item]
    if len(given) != 1:
        found = f"found {' and '.join(given)}" if given else "found none"
        errors.add(where, f"give exactly one of ratio, count, repeat ({found})")
        return None
    kind, value = given[0], item[given[0]]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        errors.add(where, f"{kind} must be a number, got {value!r}")
    elif kind == "ratio" and not 0 < value <= 1:
        hint = "; use repeat to oversample" if value > 1 else ""
        errors.add(where, f"ratio must be in (0, 1], got {value}{hint}")
    elif kind == "count" and (not isinstance(value, int) or value <= 0):
        hint = "; for a fraction use ratio" if isinstance(value, float) else ""
        errors.add(where, f"count must be a positive integer, got {value!r}{hint}")
    elif kind == "repeat" and value < 1:
        errors.add(where, f"repeat must be at least 1 (whole copies plus a fraction), got {value}; use ratio below 1")
    else:
        return Amount(kind, float(value))
    return None
