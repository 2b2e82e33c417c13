"""Shared fixtures: the path of the checked-in raw fixtures, and a converter runner that reads the result back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datamix.convert import rejects_path, run_conversion
from datamix.table import read_samples

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixtures_path() -> Path:
    return FIXTURES


@pytest.fixture
def convert(tmp_path):
    """Run a converter on fixture paths; return (samples by id, rejects, ledger)."""

    def run(source: str, *paths: Path | str, options=None):
        out = tmp_path / f"{source}.parquet"
        ledger = run_conversion(source, [str(p) for p in paths], out, options)
        samples = {s.id: s for s in read_samples(out)}
        rejects = [json.loads(line) for line in rejects_path(out).read_text().splitlines()]
        assert ledger.balanced(), ledger.summary()  # nothing lost: every record is out or rejected
        return samples, rejects, ledger

    return run


# Property-based tests run the same examples on every machine: a CI run never fails by luck of the draw.
# (Locally, `--hypothesis-profile=explore` draws new examples.)
from hypothesis import settings  # noqa: E402

settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile("repeatable")
