"""Ray engine on a local Ray instance: the same rows as the local engine."""

from __future__ import annotations

import pytest

from duchenne import batch
from duchenne.batch.ray_engine import ray_available
from duchenne.errors import BatchError

from .conftest import STAGES, read_table, rows_of

_missing = ray_available()
pytestmark = pytest.mark.skipif(
    _missing is not None,
    reason=f"Ray Data is not installed ({_missing}): pip install 'duchenne[ray]'",
)


def test_ray_engine_matches_the_local_engine(reference, tmp_path) -> None:
    sources = list(dict.fromkeys(r["source"] for r in reference["rows"]))[:24]
    out = tmp_path / "ray.parquet"
    try:
        summary = batch.run(
            sources, out=out, engine="ray", workers=2, stages=STAGES, chunk_size=4, part_size=8
        )
    except BatchError as exc:
        if "could not start" in str(exc):
            pytest.skip(f"Ray cannot start on this machine: {exc}")
        raise
    assert summary.engine == "ray" and summary.workers == 2
    assert summary.processed == 24 and summary.failed == 12 and not summary.interrupted
    assert read_table(out) == rows_of(reference["rows"], set(sources))
    assert 1 <= len(summary.peak_rss_mb) <= 2
