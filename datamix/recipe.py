"""Recipes (`recipes/*.yaml`): what goes into a mix, loaded into frozen dataclasses and validated whole.

Every problem in a recipe is reported at once, before any work, one line each, naming the recipe file,
the source and the fix. Paths are relative to the recipe file (or absolute); `${VAR}` and
`${VAR:-default}` expand from the environment, so shipped recipes name a data root the user sets.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from datamix.decontam.spec import DEDUPE_IMAGES, MAX_PHASH, TIERS, DedupeSpec, EvalSpec, ExcludeSpec, Tiers
from datamix.errors import DatamixError, RecipeError
from datamix.inputs import JSON_SUFFIXES, expand_inputs
from datamix.paths import is_safe_name
from datamix.prompts import PromptPolicy

TOP_KEYS = ("name", "description", "seed", "sources", "shards", "max_reject_ratio", "max_image_pixels", "exclude",
            "dedupe")
SOURCE_KEYS = ("name", "converter", "parquet", "inputs", "image_root", "ratio", "count", "repeat",
               "format_prompt", "options", "max_reject_ratio", "planned", "note")
SHARD_KEYS = ("max_samples", "max_bytes")
AMOUNT_KEYS = ("ratio", "count", "repeat")
EXCLUDE_KEYS = ("sets", "tiers", "links")
EVAL_SET_KEYS = ("name", "kind", "path", "image_root", "splits")
DEDUPE_KEYS = ("images", "phash", "conversations")
SIZE_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's decompression-bomb threshold
# Bounds on what a recipe may expand to: a few KB of YAML aliases can otherwise expand into gigabytes
# (the "billion laughs"), and the resolved recipe is copied into every manifest.
MAX_RECIPE_BYTES = 1 << 20
MAX_RECIPE_NODES = 100_000  # values after alias expansion
MAX_TEXT_CHARS = 10_000  # description, note
MAX_REPEAT = 1000
MAX_SEED = 2**63 - 1
NAME_RULE = "letters, digits, '.', '_' or '-', starting with a letter or digit, at most 128 characters"


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
    exclude: ExcludeSpec | None = None  # evaluation sets whose images no sample may show
    dedupe: DedupeSpec | None = None  # duplicates inside the mix to drop

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
        if self.exclude is not None:
            data["exclude"]["links"] = [_portable(p, base) for p in self.exclude.links]
            for entry, spec in zip(data["exclude"]["sets"], self.exclude.sets):
                entry["path"] = _portable(spec.path, base)
                entry["image_root"] = _portable(spec.image_root, base) if spec.image_root else None
        return json.loads(json.dumps(data))  # plain JSON types (lists, not tuples), as the manifest reads back


def _portable(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path, base).replace(os.sep, "/")
    except ValueError:  # another drive on Windows
        return str(path)


# Every character str.splitlines() breaks at, written as its escape instead.
_LINE_BREAKS = {ord(c): c.encode("unicode_escape").decode() for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


class _Errors:
    """Collects every problem so the user fixes the recipe in one round."""

    def __init__(self, path: Path):
        self.path, self.lines = path, []

    def add(self, where: str, message: str) -> None:
        line = f"{self.path}: {where}: {message}"  # values from the recipe may hold line breaks: one line each
        self.lines.append(line.translate(_LINE_BREAKS))

    def raise_if_any(self) -> None:
        if self.lines:
            raise RecipeError("\n".join(self.lines) if len(self.lines) == 1 else
                              f"{len(self.lines)} problems in the recipe:\n  " + "\n  ".join(self.lines))


class _RecipeLoader(yaml.SafeLoader):
    """safe_load without its surprises: a key given twice is an error (YAML keeps the last one silently),
    and the tags that build non-JSON values (`!!binary` bytes, `!!set`, `!!omap`) are refused."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int, float, bool)):
                    continue  # an unhashable key is reported by the parent as it always was
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice in one mapping", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


for _tag in ("binary", "set", "omap", "pairs"):
    _RecipeLoader.yaml_constructors.pop(f"tag:yaml.org,2002:{_tag}", None)
_RecipeLoader.yaml_constructors = dict(_RecipeLoader.yaml_constructors)  # our copy, not SafeLoader's


def read_recipe_yaml(path: Path) -> Any:
    """The recipe file parsed, bounded and JSON-typed, or one RecipeError line saying what is wrong."""
    if not path.is_file():
        raise RecipeError(f"{path}: no such recipe file")
    data = path.read_bytes()
    if len(data) > MAX_RECIPE_BYTES:
        raise RecipeError(f"{path}: {len(data):,} bytes; a recipe is at most {MAX_RECIPE_BYTES:,} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{path}: not UTF-8 text (byte {exc.start}); save the recipe as UTF-8") from None
    try:
        raw = yaml.load(text, Loader=_RecipeLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise RecipeError(f"{path}: nested too deeply to be a recipe") from None
    _check_size(raw, path)
    return raw


def _check_size(raw: Any, path: Path) -> None:
    """Count values as the manifest would write them (aliases expanded); stop at the bound."""
    stack, nodes = [raw], 0
    while stack:
        value = stack.pop()
        nodes += 1
        if nodes > MAX_RECIPE_NODES:
            raise RecipeError(f"{path}: expands to more than {MAX_RECIPE_NODES:,} values (YAML aliases?); "
                              "a recipe lists sources, it does not need that many")
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def load_recipe(path: str | Path, *, check_files: bool = True) -> Recipe:
    path = Path(path)
    raw = read_recipe_yaml(path)
    errors = _Errors(path)
    if not isinstance(raw, dict):
        errors.add("top level", "expected a mapping with name, seed and sources")
        errors.raise_if_any()
    _unknown_keys(raw, TOP_KEYS, "top level", errors)
    name = _required(raw, "name", str, "top level", errors)
    if isinstance(name, str) and not is_safe_name(name):
        errors.add("name", f"{name!r} must be {NAME_RULE} (it names the shard files)")
    seed = _required(raw, "seed", int, "top level", errors)
    if isinstance(seed, int) and not isinstance(seed, bool) and not 0 <= seed <= MAX_SEED:
        errors.add("seed", f"must be an integer from 0 to 2**63-1, got {seed}")
    description = _text(raw, "description", "top level", errors)
    sources = _sources(raw.get("sources"), path.parent, errors, check_files)
    shards = _shards(raw.get("shards") or {}, errors)
    budget = _fraction(raw.get("max_reject_ratio", 0.01), "max_reject_ratio", "top level", errors)
    max_pixels = raw.get("max_image_pixels", DEFAULT_MAX_PIXELS)
    if not isinstance(max_pixels, int) or isinstance(max_pixels, bool) or max_pixels <= 0:
        errors.add("max_image_pixels", f"must be a positive integer, got {max_pixels!r}")
    exclude = _exclude(raw["exclude"], path.parent, errors, check_files) if raw.get("exclude") is not None else None
    dedupe = _dedupe(raw["dedupe"], errors) if raw.get("dedupe") is not None else None
    errors.raise_if_any()
    return Recipe(path=path.resolve(), name=name, seed=seed, sources=tuple(sources), shards=shards,
                  max_reject_ratio=budget, max_image_pixels=max_pixels, description=description,
                  exclude=exclude, dedupe=dedupe)


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


def _text(mapping: dict, key: str, where: str, errors: _Errors) -> str:
    value = mapping.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        errors.add(where, f"{key!r} must be text, got {type(value).__name__}")
        return ""
    if len(value) > MAX_TEXT_CHARS:
        errors.add(where, f"{key!r} is {len(value):,} characters; at most {MAX_TEXT_CHARS:,}")
        return ""
    return value


def _fraction(value: Any, key: str, where: str, errors: _Errors) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:  # NaN fails too
        errors.add(where, f"{key} must be a number in [0, 1], got {value!r}")
        return 0.0
    return float(value)


def parse_size(value: Any) -> int | None:
    """`1GB`, `500 MB`, `2GiB` or a plain integer number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([A-Za-z]*)\s*", str(value))
    if not match or match.group(2).upper() not in SIZE_UNITS | {"": 1}:
        return None
    size = float(match.group(1)) * SIZE_UNITS.get(match.group(2).upper(), 1)
    return int(size) if size < 2**63 else None


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
            where = f"source {item['name'][:80]!r} (#{index + 1})"
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
    if isinstance(name, str) and not is_safe_name(name):
        errors.add(where, f"name must be {NAME_RULE} (it names folders and image paths)")
        name = None
    amount = _amount(item, where, errors)
    planned = item.get("planned", False)
    if not isinstance(planned, bool):
        errors.add(where, f"planned must be true or false, got {planned!r}")
        planned = False
    note = _text(item, "note", where, errors)
    converter, parquet = item.get("converter"), item.get("parquet")
    if converter is not None and not isinstance(converter, str):
        errors.add(where, f"converter must be a converter id such as 'vqav2', got {converter!r}")
        converter = None
    elif (converter is None) == (parquet is None):
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
                      max_reject_ratio=budget, planned=planned, note=note)


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
    elif check and parquet is not None and not _looks_like_parquet(parquet):
        errors.add(where, f"{parquet} is not a Parquet file (no PAR1 magic); give the output of `datamix convert`")
    image_root = _path(item["image_root"], base, where, errors) if item.get("image_root") is not None else None
    if check and image_root is not None and not image_root.is_dir():
        errors.add(where, f"image_root {image_root} is not a folder")
    return inputs, parquet, image_root


def _looks_like_parquet(path: Path) -> bool:
    """Parquet files start and end with `PAR1`; checked here so pyarrow never sees another kind of file."""
    size = path.stat().st_size
    if size < 12:
        return False
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(size - 4)
        return head == b"PAR1" and f.read(4) == b"PAR1"


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
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        errors.add(where, f"{kind} must be a finite number, got {value!r}")
    elif kind == "ratio" and not 0 < value <= 1:
        hint = "; use repeat to oversample" if value > 1 else ""
        errors.add(where, f"ratio must be in (0, 1], got {value}{hint}")
    elif kind == "count" and (not isinstance(value, int) or value <= 0):
        hint = "; for a fraction use ratio" if isinstance(value, float) else ""
        errors.add(where, f"count must be a positive integer, got {value!r}{hint}")
    elif kind == "repeat" and value < 1:
        errors.add(where, f"repeat must be at least 1 (whole copies plus a fraction), got {value}; use ratio below 1")
    elif kind == "repeat" and value > MAX_REPEAT:
        errors.add(where, f"repeat must be at most {MAX_REPEAT} copies, got {value:g}")
    else:
        return Amount(kind, float(value))
    return None


def _exclude(raw: Any, base: Path, errors: _Errors, check_files: bool) -> ExcludeSpec | None:
    """`exclude: {sets: [...], tiers: {...}, links: [...]}`: evaluation sets no sample may share an image with."""
    if not isinstance(raw, dict):
        errors.add("exclude", "expected a mapping with sets (the evaluation sets), tiers and links")
        return None
    _unknown_keys(raw, EXCLUDE_KEYS, "exclude", errors)
    sets = raw.get("sets")
    if not isinstance(sets, list) or not sets:
        errors.add("exclude", "sets must be a non-empty list of evaluation sets {name, kind, path}")
        sets = []
    specs, seen = [], set()
    for index, item in enumerate(sets):
        where = f"exclude set #{index + 1}"
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            where = f"exclude set {item['name'][:80]!r} (#{index + 1})"
            if item["name"] in seen:
                errors.add(where, "duplicate evaluation set name; names must be unique")
            seen.add(item["name"])
        spec = _eval_set(item, base, where, errors, check_files)
        if spec is not None:
            specs.append(spec)
    tiers = _tiers(raw.get("tiers", {}), errors)
    links = raw.get("links") or []
    links = [links] if isinstance(links, str) else links
    if not isinstance(links, list):
        errors.add("exclude", "links must be a list of Visual Genome image_data.json files")
        links = []
    link_paths = [p for p in (_path(v, base, "exclude links", errors) for v in links) if p is not None]
    for p in link_paths:
        if check_files and not p.is_file():
            errors.add("exclude links", f"{p} is not a file (give Visual Genome's image_data.json)")
    return ExcludeSpec(sets=tuple(specs), tiers=tiers, links=tuple(link_paths))


def _eval_set(item: Any, base: Path, where: str, errors: _Errors, check_files: bool) -> EvalSpec | None:
    from datamix.decontam.evalsets import KINDS
    from datamix.converters.refcoco import SPLITS as REFCOCO_SPLITS

    if not isinstance(item, dict):
        errors.add(where, "expected a mapping with name, kind and path")
        return None
    _unknown_keys(item, EVAL_SET_KEYS, where, errors)
    name = _required(item, "name", str, where, errors)
    if isinstance(name, str) and not is_safe_name(name):
        errors.add(where, f"name must be {NAME_RULE} (it names the evaluation set in the ledger)")
        name = None
    kind = _required(item, "kind", str, where, errors)
    if isinstance(kind, str) and kind not in KINDS:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        errors.add(where, f"unknown kind {kind!r}{hint} (kinds: {', '.join(KINDS)})")
        kind = None
    path = _path(item.get("path"), base, where, errors) if item.get("path") is not None else None
    if item.get("path") is None:
        errors.add(where, "missing required key 'path' (the evaluation set's official file)")
    elif check_files and path is not None and not path.exists():
        errors.add(where, f"path {path} does not exist")
    root = _path(item["image_root"], base, where, errors) if item.get("image_root") is not None else None
    if check_files and root is not None and not root.is_dir():
        errors.add(where, f"image_root {root} is not a folder")
    splits = item.get("splits")
    if splits is not None and kind != "refcoco":
        errors.add(where, "splits is for kind refcoco (which refs splits are evaluation data)")
    splits = [splits] if isinstance(splits, str) else splits
    if splits is not None and (not isinstance(splits, list) or not splits
                               or any(s not in REFCOCO_SPLITS for s in splits)):
        errors.add(where, f"splits must be a list of {', '.join(REFCOCO_SPLITS)}, got {item.get('splits')!r}")
        splits = None
    if name is None or kind is None or path is None:
        return None
    return EvalSpec(name=name, kind=kind, path=path, image_root=root,
                    **({"splits": tuple(splits)} if splits else {}))


def _threshold(value: Any, where: str, errors: _Errors) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PHASH:
        errors.add(where, f"phash must be false or a Hamming distance from 0 to {MAX_PHASH} bits, got {value!r}")
        return None
    return value


def _tiers(raw: Any, errors: _Errors) -> Tiers:
    if not isinstance(raw, dict):
        errors.add("exclude tiers", "expected a mapping like {ids: true, bytes: true, pixels: true, phash: 4}")
        return Tiers()
    _unknown_keys(raw, TIERS, "exclude tiers", errors)
    values = {}
    for tier in ("ids", "bytes", "pixels"):
        value = raw.get(tier, True)
        if not isinstance(value, bool):
            errors.add("exclude tiers", f"{tier} must be true or false, got {value!r}")
            value = True
        values[tier] = value
    phash = raw.get("phash", Tiers.phash)
    values["phash"] = None if phash is False or phash is None else _threshold(phash, "exclude tiers", errors)
    tiers = Tiers(**values)
    if not tiers.names():
        errors.add("exclude tiers", "every tier is off; turn on at least one of ids, bytes, pixels, phash")
    return tiers


def _dedupe(raw: Any, errors: _Errors) -> DedupeSpec | None:
    """`dedupe: {images: bytes|pixels|phash, phash: 4, conversations: true}`: duplicates inside the mix."""
    if not isinstance(raw, dict):
        errors.add("dedupe", "expected a mapping like {images: pixels, conversations: true}")
        return None
    _unknown_keys(raw, DEDUPE_KEYS, "dedupe", errors)
    images = raw.get("images")
    if images is False:
        images = None
    if images is not None and images not in DEDUPE_IMAGES:
        errors.add("dedupe", f"images must be one of {', '.join(DEDUPE_IMAGES)} (or false), got {images!r}")
        images = None
    phash = _threshold(raw.get("phash", DedupeSpec.phash), "dedupe", errors)
    if "phash" in raw and images != "phash":
        errors.add("dedupe", "phash (the distance) goes with images: phash")
    conversations = raw.get("conversations", False)
    if not isinstance(conversations, bool):
        errors.add("dedupe", f"conversations must be true or false, got {conversations!r}")
        conversations = False
    if images is None and not conversations:
        errors.add("dedupe", "nothing to compare: give images (bytes, pixels or phash) or conversations: true")
    return DedupeSpec(images=images, phash=DedupeSpec.phash if phash is None else phash,
                      conversations=conversations)
