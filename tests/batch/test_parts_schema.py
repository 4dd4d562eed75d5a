"""Parquet parts share one typed schema, so ``OUT.parts/`` reads as one dataset.

Why: a part whose inputs all failed (or had no face) holds its measurement columns as
nulls, which Parquet stores untyped; a dataset over parts of mixed schemas fails
("Unsupported cast from int64 to null") unless given a schema.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
ds = pytest.importorskip("pyarrow.dataset")

from duchenne import batch  # noqa: E402
from duchenne.batch.ledger import Ledger, PartWriter  # noqa: E402
from duchenne.io.sinks import write_records  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"
SETTINGS = {"stages": ["detect"]}


def _schemas(parts: Path) -> list:
    return [pq.read_schema(p) for p in sorted(parts.glob("part-*.parquet"))]


def test_parts_of_failed_inputs_first_read_as_one_dataset(tmp_path: Path) -> None:
    photos = tmp_path / "in"
    photos.mkdir()
    (photos / "a_empty.jpg").write_bytes(b"")
    (photos / "b_text.png").write_text("hello, not a picture\n")
    shutil.copy(DATA / "grace_hopper.jpg", photos / "c.jpg")
    shutil.copy(DATA / "grace_hopper.jpg", photos / "d.jpg")
    out = tmp_path / "faces.parquet"
    summary = batch.run(
        [str(photos)],
        out=out,
        workers=0,
        stages=("detect", "landmarks", "geometry"),
        chunk_size=1,
        part_size=2,  # the first part: the two bad files only
        keep_parts=True,
    )
    assert summary.failed == 2 and summary.faces == 2
    parts = out.with_name(out.name + ".parts")
    schemas = _schemas(parts)
    assert len(schemas) == 2 and schemas[0] == schemas[1]
    final = pq.read_schema(out)
    assert schemas[0] == final
    assert final.field("box.x1").type == pa.float64() and final.field("face").type == pa.int64()
    table = ds.dataset(parts, format="parquet").to_table()  # no schema given
    assert table.schema == final
    assert table.to_pylist() == pq.read_table(out).to_pylist()


def _row(source: str, face: int | None, error: str | None = None) -> dict:
    return {"source": source, "face": face, "score": None if face is None else 0.5,
            "error": error, "fingerprint": "size=1"}  # fmt: skip


def test_a_part_that_widens_the_schema_retypes_the_earlier_parts(tmp_path: Path) -> None:
    """Only errors, then no errors but faces, then a new column: every step widens."""
    out = tmp_path / "r.parquet"
    writer = PartWriter(Ledger(out, "parquet", SETTINGS), part_size=1)
    writer.add([[_row("a", None, "ImageLoadError: bad")]])
    writer.add([[_row("b", 0)]])
    writer.add([[{**_row("c", 1), "frame": 3}]])
    schemas = _schemas(writer.ledger.parts_dir)
    assert len(schemas) == 3 and all(s == schemas[-1] for s in schemas)
    assert schemas[0].names == ["source", "face", "score", "error", "fingerprint", "frame"]
    assert [f.type for f in schemas[0]][1:4] == [pa.int64(), pa.float64(), pa.string()]
    writer.ledger.finalize(keep_parts=True)
    assert pq.read_schema(out) == schemas[0]
    assert ds.dataset(writer.ledger.parts_dir, format="parquet").to_table().num_rows == 3


def test_a_resumed_run_retypes_parts_a_stopped_run_left_untyped(tmp_path: Path) -> None:
    """A run killed while it retyped the parts leaves parts of two schemas: the next
    run's ledger gives them one before it appends."""
    out = tmp_path / "r.parquet"
    first = Ledger(out, "parquet", SETTINGS)
    first.commit_part([_row("a", None, "ImageLoadError: bad")])
    first.commit_part([_row("b", 0)])
    untyped = first.parts()[0][1]
    write_records([_row("a", None, "ImageLoadError: bad")], untyped)  # as before retyping
    assert len({str(s) for s in _schemas(first.parts_dir)}) == 2
    again = Ledger(out, "parquet", SETTINGS)
    assert len({str(s) for s in _schemas(again.parts_dir)}) == 1
    assert again.is_done("a", "size=1") and again.is_done("b", "size=1")
    assert ds.dataset(again.parts_dir, format="parquet").to_table().num_rows == 2
