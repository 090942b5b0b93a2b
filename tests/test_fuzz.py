"""The fuzz targets (fuzz/targets.py) in CI: the seeds always, 2,000 inputs per target (slow).

The long runs (1,000,000 inputs per target, coverage-guided with atheris) are
``fuzz/figures.sh``; this keeps every target alive and crash-free in CI. A failure here
prints the input: add it to fuzz/corpus/TARGET once fixed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.targets import TARGETS, run_one

CORPUS = Path(__file__).resolve().parents[1] / "fuzz" / "corpus"


def seeds(name: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted((CORPUS / name).iterdir())]


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds(name: str) -> None:
    found = seeds(name)
    assert found, f"no seeds for {name} in {CORPUS}"
    for data in found:
        run_one(name, data)


def _mutations(name: str) -> st.SearchStrategy[bytes]:
    """Random bytes, or a seed with bytes replaced, inserted or cut."""

    def mutate(seed: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
        out = bytearray(seed)
        for pos, cut, insert in edits:
            p = pos % (len(out) + 1)
            out[p : p + cut] = insert
        return bytes(out)

    edit = st.tuples(st.integers(0, 1 << 16), st.integers(0, 8), st.binary(max_size=8))
    return st.one_of(
        st.binary(max_size=2048),
        st.builds(mutate, st.sampled_from(seeds(name)), st.lists(edit, max_size=6)),
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_2000(name: str) -> None:
    @settings(
        max_examples=2000,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(_mutations(name))
    def one(data: bytes) -> None:
        run_one(name, data)

    one()
