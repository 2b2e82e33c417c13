"""Converter options: each converter declares its own, and every entry point reads them from there.

A converter's options are a frozen dataclass (its `Options` class attribute) whose fields are made with
`option(default, help, choices=...)`. The recipe loader, `datamix convert --option key=value` and
`datamix converters` all go through `option_specs`, `option_problems` and `parse_options`, so an option
is declared, validated and documented in one place: the converter's own module.

Values arrive as strings from the command line and as YAML scalars from recipes; a field with `choices`
takes one of those strings, any other field takes a value of its default's type (str, int, float, bool).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TRUE, FALSE = ("true", "yes", "1"), ("false", "no", "0")


def option(default: Any, help: str, choices: Sequence[str] | None = None) -> Any:  # noqa: A002 (the field's help)
    """Declare one converter option: its default, the values it accepts and a one-line help."""
    if choices is not None and default not in choices:
        raise ValueError(f"option default {default!r} is not one of its choices {list(choices)}")
    return dataclasses.field(default=default, metadata={"help": help, "choices": tuple(choices or ())})


@dataclass(frozen=True)
class NoOptions:
    """For converters that take no options."""


@dataclass(frozen=True)
class OptionSpec:
    name: str
    default: Any
    help: str
    choices: tuple[str, ...]

    @property
    def allowed(self) -> str:
        """What the option accepts, in words: `a|b|c`, or the type of its default."""
        return "|".join(self.choices) if self.choices else type(self.default).__name__

    def parse(self, value: Any) -> Any:
        """The typed value, or raise ValueError with what is accepted."""
        if self.choices:
            text = str(value)
            if isinstance(value, bool) or text not in self.choices:
                raise ValueError(f"must be one of {', '.join(self.choices)}, got {value!r}")
            return text
        kind = type(self.default)
        if kind is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in TRUE + FALSE:
                return str(value).lower() in TRUE
        elif kind in (int, float) and not isinstance(value, bool):
            try:
                return kind(value)
            except (TypeError, ValueError):
                pass
        elif kind is str and not isinstance(value, (bool, dict, list)):
            return str(value)
        raise ValueError(f"must be a {kind.__name__}, got {value!r}")


def option_specs(options_class: type) -> tuple[OptionSpec, ...]:
    """The declared options of a converter's `Options` dataclass, in declaration order."""
    return tuple(OptionSpec(f.name, f.default, f.metadata.get("help", ""), f.metadata.get("choices", ()))
                 for f in dataclasses.fields(options_class))


def option_problems(options_class: type, values: Mapping[str, Any]) -> list[str]:
    """One line per unknown option or invalid value; empty when `values` are all acceptable."""
    specs = {spec.name: spec for spec in option_specs(options_class)}
    allowed = ", ".join(specs) if specs else "none (this converter takes no options)"
    problems = []
    for name, value in values.items():
        spec = specs.get(name)
        if spec is None:
            close = difflib.get_close_matches(str(name), list(specs), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(f"unknown option {name!r}; {hint}its options: {allowed}")
            continue
        try:
            spec.parse(value)
        except ValueError as exc:
            problems.append(f"option {name!r} {exc}")
    return problems


def parse_options(options_class: type, values: Mapping[str, Any]) -> Any:
    """Build the `Options` instance from raw values (already checked with `option_problems`)."""
    specs = {spec.name: spec for spec in option_specs(options_class)}
    return options_class(**{name: specs[name].parse(value) for name, value in values.items()})


def parse_assignments(assignments: Sequence[str]) -> dict[str, str]:
    """`["answer=most_common", ...]` from the command line -> {"answer": "most_common"}."""
    values = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--option {item!r} must be key=value, e.g. --option answer=most_common")
        values[name.strip()] = value.strip()
    return values
