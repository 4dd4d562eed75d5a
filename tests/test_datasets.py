"""Dataset reader tests: tiny fake layouts in tmp_path, plus checks on the real datasets.

The real-data tests skip when ``../shared/datasets`` (beside the checkout) is absent,
so a fresh clone still passes.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import numpy as np
import pytest

from duchenne.datasets import (
    FERPLUS_EMOTIONS,
    detect_layout,
    read_class_folders,
    read_csv_labels,
    read_dataset,
    read_ferplus,
    read_genki4k,
    read_mtfl,
    read_smilesmiled,
    read_split_file,
    write_split_file,
)
from duchenne.errors import DatasetError

REAL = Path(
    os.environ.get(
        "DUCHENNE_DATASETS", Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"
    )
)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


# --------------------------------------------------------------------------- FER+ (fake)

# name, votes: neutral happiness surprise sadness anger disgust fear contempt unknown NF
FER_ROWS = [
    ("a.png", [0, 8, 1, 0, 0, 0, 0, 0, 1, 0]),  # happiness -> smile, intensity 0.8
    ("b.png", [6, 2, 0, 0, 0, 0, 0, 0, 2, 0]),  # neutral -> no smile, intensity 0.2
    ("c.png", [1, 1, 0, 0, 0, 0, 0, 0, 6, 2]),  # unknown plurality -> dropped
    ("d.png", [2, 0, 0, 0, 0, 0, 0, 0, 0, 8]),  # NF plurality -> dropped
    ("e.png", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),  # no emotion vote -> dropped
    ("f.png", [4, 4, 0, 0, 0, 0, 0, 0, 2, 0]),  # happiness/neutral tie -> neutral (first)
    ("g.png", [0, 4, 4, 0, 0, 0, 0, 0, 2, 0]),  # happiness/surprise tie -> happiness
    ("h.png", [4, 0, 0, 0, 0, 0, 0, 0, 4, 2]),  # emotion ties unknown -> kept
    ("missing.png", [0, 10, 0, 0, 0, 0, 0, 0, 0, 0]),  # image absent -> dropped
]


def _fake_ferplus(root: Path, split: str = "Test", rows: list | None = None) -> Path:
    folder = root / f"FER2013{split}"
    folder.mkdir(parents=True)
    lines = []
    for name, votes in rows or FER_ROWS:
        if name != "missing.png":
            _touch(folder / name)
        lines.append(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, votes)))
    (folder / "label.csv").write_text("\n".join(lines) + "\n")
    return root


def test_read_ferplus_drops_and_labels(tmp_path: Path) -> None:
    samples = read_ferplus(_fake_ferplus(tmp_path), "test")
    by_name = {s.path.name: s for s in samples}
    assert sorted(by_name) == ["a.png", "b.png", "f.png", "g.png", "h.png"]
    assert samples.stats.rows == 9 and samples.stats.kept == 5
    assert samples.stats.dropped == {
        "unknown_or_not_face": 2,
        "no_emotion_votes": 1,
        "missing_file": 1,
    }
    a = by_name["a.png"]
    assert (a.label, a.intensity, a.split, a.box) == (1, pytest.approx(0.8), "Test", (0, 0, 48, 48))
    assert a.votes.tolist() == [0, 8, 1, 0, 0, 0, 0, 0] and a.emotion == 1
    assert (by_name["b.png"].label, by_name["b.png"].intensity) == (0, pytest.approx(0.2))
    assert (by_name["f.png"].label, by_name["f.png"].meta["tie"]) == (0, True)
    assert (by_name["g.png"].label, by_name["g.png"].meta["tie"]) == (1, True)
    assert by_name["h.png"].meta == {"emotion": 0, "tie": False, "unknown": 4, "nf": 2}


def test_read_ferplus_errors(tmp_path: Path) -> None:
    root = _fake_ferplus(tmp_path / "ok")
    with pytest.raises(DatasetError, match="split"):
        read_ferplus(root, "dev")
    with pytest.raises(DatasetError, match="not found"):
        read_ferplus(root, "Train")
    bad = _fake_ferplus(tmp_path / "bad")
    (bad / "FER2013Test" / "label.csv").write_text('x.png,"(0, 0, 48, 48)",1,2,3\n')
    with pytest.raises(DatasetError, match="12 columns"):
        read_ferplus(bad, "Test")
    (bad / "FER2013Test" / "label.csv").write_text('x.png,"(0, 0, 48, 48)",1,a,0,0,0,0,0,0,0,0\n')
    with pytest.raises(DatasetError, match="integers"):
        read_ferplus(bad, "Test")


def test_ferplus_layouts_via_read_dataset(tmp_path: Path) -> None:
    root = _fake_ferplus(tmp_path)
    _fake_ferplus(root, "Valid", rows=FER_ROWS[:2])
    assert detect_layout(root) == "ferplus"
    assert detect_layout(root / "FER2013Test") == "ferplus_split"
    assert len(read_dataset(root)) == 7  # all splits present
    assert len(read_dataset(root, "Valid")) == 2
    folder = read_dataset(root / "FER2013Test")
    assert len(folder) == 5 and {s.split for s in folder} == {"Test"}


# --------------------------------------------------------------------------- SMILEsmileD (fake)


def _fake_smiles(root: Path, n_pos: int = 10, n_neg: int = 25, seed: int = 0) -> Path:
    names = [("positives/positives7", i) for i in range(n_pos)] + [
        ("negatives/negatives7", i) for i in range(n_neg)
    ]
    random.Random(seed).shuffle(names)  # creation order must not matter
    for folder, i in names:
        _touch(root / "SMILEs" / folder / f"{i * 7 + 3}.jpg")
    return root


def test_read_smilesmiled_split_is_stratified_and_deterministic(tmp_path: Path) -> None:
    root_a = _fake_smiles(tmp_path / "a", seed=1)
    root_b = _fake_smiles(tmp_path / "b", seed=2)
    everything = read_smilesmiled(root_a)
    assert len(everything) == 35 and sum(s.label for s in everything) == 10
    test = read_smilesmiled(root_a, "test")
    train = read_smilesmiled(root_a, "train")
    assert (sum(s.label for s in test), len(test)) == (
        2,
        7,
    )  # 20% of 10 and of 25 (rounded half up)
    assert len(train) == 28
    assert not {s.path for s in test} & {s.path for s in train}
    rel = lambda samples, root: sorted(s.path.relative_to(root).as_posix() for s in samples)  # noqa: E731
    assert rel(test, root_a) == rel(read_smilesmiled(root_b, "test"), root_b)
    assert rel(test, root_a) != rel(read_smilesmiled(root_a, "test", seed=1), root_a)
    assert detect_layout(root_a) == "smilesmiled"
    assert len(read_dataset(root_a, "test")) == 7


def test_smilesmiled_split_file_roundtrip(tmp_path: Path) -> None:
    root = _fake_smiles(tmp_path / "data")
    samples = read_smilesmiled(root, seed=3)
    split_path = write_split_file(
        samples, tmp_path / "split.csv", root=root / "SMILEs", comment="seed=3"
    )
    text = split_path.read_text().splitlines()
    assert text[0] == "# seed=3" and text[1] == "path,label,split" and len(text) == 37
    assignment = read_split_file(split_path)
    assert len(assignment) == 35 and set(assignment.values()) == {"train", "test"}
    recorded = read_smilesmiled(root, "test", split_file=split_path)  # seed 0 ignored
    assert {s.path for s in recorded} == {s.path for s in samples if s.split == "test"}
    _touch(root / "SMILEs" / "positives" / "positives7" / "new.jpg")
    with pytest.raises(DatasetError, match="no split"):
        read_smilesmiled(root, split_file=split_path)


def test_read_smilesmiled_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError):
        read_smilesmiled(tmp_path)
    root = _fake_smiles(tmp_path / "x")
    with pytest.raises(DatasetError):
        read_smilesmiled(root, "valid")
    with pytest.raises(DatasetError):
        read_smilesmiled(root, test_fraction=1.5)


# --------------------------------------------------------------------------- GENKI-4K (fake)


@pytest.mark.parametrize("subdir", ["files", ""])
def test_read_genki4k(tmp_path: Path, subdir: str) -> None:
    (tmp_path / "labels.txt").write_text("1 -0.02 0.05 -0.03\n0 0.10 0.00 0.01\n1 0 0 0\n")
    for i in (3, 1, 2):
        _touch(tmp_path / subdir / f"file{i:04d}.jpg")
    samples = read_genki4k(tmp_path)
    assert [s.path.name for s in samples] == ["file0001.jpg", "file0002.jpg", "file0003.jpg"]
    assert [s.label for s in samples] == [1, 0, 1]
    assert samples[0].meta == {"yaw": -0.02, "pitch": 0.05, "roll": -0.03}
    assert detect_layout(tmp_path) == "genki4k"
    assert len(read_dataset(tmp_path / "labels.txt")) == 3


def test_read_genki4k_errors(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("1 0 0 0\n0 0 0 0\n")
    _touch(tmp_path / "files" / "file0001.jpg")
    with pytest.raises(DatasetError, match="2 labels"):
        read_genki4k(tmp_path)
    (tmp_path / "labels.txt").write_text("yes 0 0 0\n")
    with pytest.raises(DatasetError, match="numbers"):
        read_genki4k(tmp_path)


# --------------------------------------------------------------------------- class folders (fake)


def test_read_class_folders_binary(tmp_path: Path) -> None:
    _touch(tmp_path / "Smile" / "a.jpg")
    _touch(tmp_path / "Smile" / "deep" / "b.png")
    _touch(tmp_path / "no-smile" / "c.jpeg")
    _touch(tmp_path / "no-smile" / "notes.txt")
    samples = read_class_folders(tmp_path)
    assert sorted((s.path.name, s.label) for s in samples) == [
        ("a.jpg", 1),
        ("b.png", 1),
        ("c.jpeg", 0),
    ]
    assert all(s.votes is None for s in samples)
    assert detect_layout(tmp_path) == "class_folders"


def test_read_class_folders_emotions(tmp_path: Path) -> None:
    for name in ("happy", "neutral", "sad"):
        _touch(tmp_path / name / f"{name}.jpg")
    samples = read_class_folders(tmp_path)
    assert samples.stats.notes["mode"] == "emotion"
    by_class = {s.meta["class"]: s for s in samples}
    assert by_class["happy"].label == 1 and by_class["sad"].label == 0
    assert (
        by_class["happy"].votes.tolist()
        == np.eye(8, dtype=int)[FERPLUS_EMOTIONS.index("happiness")].tolist()
    )
    assert by_class["sad"].emotion == FERPLUS_EMOTIONS.index("sadness")


def test_read_class_folders_and_layout_errors(tmp_path: Path) -> None:
    _touch(tmp_path / "smile" / "a.jpg")
    _touch(tmp_path / "cats" / "b.jpg")
    with pytest.raises(DatasetError, match="cats"):
        read_class_folders(tmp_path)
    with pytest.raises(DatasetError, match="unknown dataset layout"):
        detect_layout(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="unknown dataset layout"):
        detect_layout(tmp_path / "empty")
    with pytest.raises(DatasetError, match="does not exist"):
        read_dataset(tmp_path / "nowhere")
    with pytest.raises(DatasetError):
        detect_layout(_touch(tmp_path / "notes.txt"))


def test_read_dataset_split_subfolder(tmp_path: Path) -> None:
    for split in ("train", "test"):
        _touch(tmp_path / split / "smile" / "a.jpg")
        _touch(tmp_path / split / "neutral" / "b.jpg")
    assert len(read_dataset(tmp_path, "test")) == 2
    with pytest.raises(DatasetError, match="no split folder"):
        read_dataset(tmp_path / "test", "valid")


# --------------------------------------------------------------------------- CSV (fake)


def test_read_csv_labels(tmp_path: Path) -> None:
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        _touch(tmp_path / "img" / name)
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text(
        "path,label,intensity,who\n"
        "img/a.jpg,smile,0.7,x\n"
        f"{tmp_path / 'img' / 'b.jpg'},0,,y\n"
        "img/c.jpg,True,,z\n"
        "img/gone.jpg,1,,z\n"
    )
    samples = read_csv_labels(csv_path)
    assert [(s.path.name, s.label, s.intensity) for s in samples] == [
        ("a.jpg", 1, 0.7),
        ("b.jpg", 0, None),
        ("c.jpg", 1, None),
    ]
    assert samples[0].path == tmp_path / "img" / "a.jpg" and samples[0].meta == {"who": "x"}
    assert samples.stats.dropped == {"missing_file": 1}
    assert detect_layout(csv_path) == "csv" and detect_layout(tmp_path) == "csv"
    assert len(read_dataset(tmp_path)) == 3


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty CSV"),
        ("file_name,smiling\nimg/a.jpg,1\n", "header"),
        ("path,label\nimg/a.jpg,maybe\n", "label must be"),
        ("path,label,intensity\nimg/a.jpg,1,1.5\n", "intensity"),
    ],
)
def test_read_csv_labels_errors(tmp_path: Path, text: str, match: str) -> None:
    _touch(tmp_path / "img" / "a.jpg")
    (tmp_path / "l.csv").write_text(text)
    with pytest.raises(DatasetError, match=match):
        read_csv_labels(tmp_path / "l.csv")


# --------------------------------------------------------------------------- real datasets


def _real(sub: str) -> Path:
    path = REAL / sub
    if not path.is_dir():
        pytest.skip(f"../shared/datasets not found: {path}")
    return path


@pytest.mark.datasets
@pytest.mark.parametrize(
    ("split", "rows", "kept", "smiles"),
    [("Train", 28558, 28385, 7526), ("Valid", 3579, 3555, 899), ("Test", 3573, 3545, 928)],
)
def test_real_ferplus_counts(split: str, rows: int, kept: int, smiles: int) -> None:
    samples = read_ferplus(_real("ferplus"), split)
    assert (samples.stats.rows, len(samples)) == (rows, kept)
    assert sum(s.label for s in samples) == smiles  # = published happiness plurality count
    assert "missing_file" not in samples.stats.dropped
    assert all(0.0 <= s.intensity <= 1.0 for s in samples)


@pytest.mark.datasets
def test_real_smilesmiled_counts_and_split() -> None:
    root = _real("smilesmiled")
    samples = read_smilesmiled(root)
    labels = samples.labels()
    assert (int(labels.sum()), int((labels == 0).sum())) == (3690, 9475)
    test = [s for s in samples if s.split == "test"]
    assert (len(test), sum(s.label for s in test)) == (2633, 738)  # 738 + 1895
    again = read_smilesmiled(root, "test")
    assert [s.path for s in again] == [s.path for s in test]
    # Pin the seed-0 split: if this fails the recipe (or numpy's generator) changed,
    # and the recorded split file, not the recipe, must be used for reported numbers.
    names = "\n".join(sorted(s.path.relative_to(root / "SMILEs").as_posix() for s in test))
    assert hashlib.sha256(names.encode()).hexdigest()[:16] == SMILES_SPLIT_SHA


SMILES_SPLIT_SHA = "c4ac89ff54883b8b"


# --------------------------------------------------------------------------- MTFL


def make_mtfl(root: Path, n_people: int = 12, photos_each: int = 3, n_net: int = 20) -> Path:
    """A fake MTFL root: LFW people with several photos each, web photos, training.txt."""
    lines = []
    for p in range(n_people):
        for k in range(1, photos_each + 1):
            name = f"lfw_5590/Person_{p:02d}_{k:04d}.jpg"
            _touch(root / name)
            smile = 1 if (p + k) % 2 else 2
            lines.append(
                f" lfw_5590\\{Path(name).name} 100 150 125 105 145 110 112 140 160 162 1 {smile} 2 3"
            )
    for i in range(n_net):
        name = f"net_7876/{i}_0_0.jpg"
        _touch(root / name)
        pose = 1 + i % 5
        lines.append(f"net_7876\\{i}_0_0.jpg 10 50 30 12 48 20 22 40 60 58 2 {1 + i % 2} 1 {pose}")
    (root / "training.txt").write_text("\n".join(lines) + "\n")
    return root


def test_read_mtfl_labels_meta_and_grouped_split(tmp_path: Path) -> None:
    root = make_mtfl(tmp_path / "mtfl")
    samples = read_mtfl(root)
    assert len(samples) == 12 * 3 + 20 and detect_layout(root) == "mtfl"
    first = samples[0]
    assert first.path == root / "lfw_5590" / "Person_00_0001.jpg"
    assert first.label == 1  # MTFL smile 1 = smiling
    np.testing.assert_allclose(first.meta["landmarks"][:2], [[100, 110], [150, 112]])
    assert (first.meta["gender"], first.meta["pose"], first.meta["glasses"]) == (
        "male",
        "frontal",
        False,
    )
    poses = {s.meta["pose"] for s in samples if s.meta["source"] == "net_7876"}
    assert poses == {"left_profile", "left", "frontal", "right", "right_profile"}
    # every photo of one LFW person lands in the same split
    by_person: dict[str, set] = {}
    for s in samples:
        if s.meta["source"] == "lfw_5590":
            by_person.setdefault(s.path.name[:9], set()).add(s.split)
    assert all(len(v) == 1 for v in by_person.values())
    assert {s.split for s in samples} == {"train", "calib", "valid"}
    valid = read_mtfl(root, "valid")
    assert [s.path for s in valid] == [s.path for s in samples if s.split == "valid"]
    assert read_mtfl(root, seed=1) != samples  # another seed, another split
    assert [s.split for s in read_mtfl(root)] == [s.split for s in samples]  # deterministic


def test_mtfl_split_file_roundtrip_and_errors(tmp_path: Path) -> None:
    root = make_mtfl(tmp_path / "mtfl")
    samples = read_mtfl(root)
    split_file = write_split_file(samples, tmp_path / "split.csv", root=root)
    again = read_mtfl(root, "all", seed=99, split_file=split_file)
    assert [s.split for s in again] == [s.split for s in samples]
    with pytest.raises(DatasetError, match="split"):
        read_mtfl(root, "test")
    with pytest.raises(DatasetError, match="training.txt"):
        read_mtfl(tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "training.txt").write_text("lfw_5590\\a.jpg 1 2 3\n")
    with pytest.raises(DatasetError, match="15 fields"):
        read_mtfl(tmp_path / "bad")
    (root / "lfw_5590" / "Person_00_0001.jpg").unlink()
    assert read_mtfl(root).stats.dropped == {"missing_file": 1}


@pytest.mark.datasets
def test_real_mtfl_counts_and_recorded_split() -> None:
    root = _real("mtfl")
    samples = read_mtfl(root)
    labels = samples.labels()
    assert (len(samples), int(labels.sum())) == (10000, 5616)
    counts = {k: sum(s.split == k for s in samples) for k in ("train", "calib", "valid")}
    assert counts == {"train": 7000, "calib": 1000, "valid": 2000}
    recorded = Path(__file__).resolve().parents[1] / "src/duchenne/data/mtfl_split_seed0.csv"
    again = read_mtfl(root, split_file=recorded)
    assert [s.split for s in again] == [s.split for s in samples]


# --------------------------------------------------------------------------- robustness


def test_bom_and_crlf_label_files_read_like_plain_ones(tmp_path: Path) -> None:
    """A label file saved by Excel (BOM, CRLF) used to lose its first row as a
    'missing_file' (FER+, MTFL) or fail to parse (GENKI, split files)."""
    bom = "\ufeff"
    fer = tmp_path / "fer" / "FER2013Test"
    for name in ("a.png", "b.png"):
        _touch(fer / name)
    rows = [f'{n},"(0, 0, 48, 48)",{",".join(map(str, v))}' for n, v in FER_ROWS[:2]]
    (fer / "label.csv").write_bytes((bom + "\r\n".join(rows) + "\r\n").encode())
    samples = read_ferplus(tmp_path / "fer", "Test")
    assert len(samples) == 2 and samples.stats.dropped == {}
    mtfl = make_mtfl(tmp_path / "mtfl")
    plain = read_mtfl(mtfl)
    text = (mtfl / "training.txt").read_text()
    (mtfl / "training.txt").write_bytes((bom + text.replace("\n", "\r\n")).encode())
    again = read_mtfl(mtfl)
    assert again.stats.dropped == {} and [s.split for s in again] == [s.split for s in plain]
    genki = tmp_path / "genki"
    for i in (1, 2):
        _touch(genki / f"file{i:04d}.jpg")
    (genki / "labels.txt").write_bytes(f"{bom}1 0 0 0\r\n0 0 0 0\r\n".encode())
    assert read_genki4k(genki).labels().tolist() == [1, 0]
    split = tmp_path / "split.csv"
    split.write_bytes(f"{bom}path,label,split\r\na.jpg,1,test\r\n".encode())
    assert read_split_file(split) == {"a.jpg": "test"}


def test_a_missing_mtfl_photo_moves_no_other_photo(tmp_path: Path) -> None:
    """The split is dealt over training.txt, not over the photos present: one missing file
    used to re-deal the permutation (a third of the photos changed split)."""
    root = make_mtfl(tmp_path / "mtfl")
    before = {s.path: s.split for s in read_mtfl(root)}
    (root / "net_7876" / "0_0_0.jpg").unlink()
    after = read_mtfl(root)
    assert after.stats.dropped == {"missing_file": 1}
    assert {s.path: s.split for s in after} == {
        p: split for p, split in before.items() if p.name != "0_0_0.jpg"
    }
    # a split file written from the partial copy reads back on it
    recorded = write_split_file(after, tmp_path / "split.csv", root=root)
    assert [s.split for s in read_mtfl(root, split_file=recorded)] == [s.split for s in after]


@pytest.mark.parametrize("field", [12, 13, 14, 15])  # gender, smile, glasses, pose
def test_mtfl_attribute_out_of_range_is_an_error(tmp_path: Path, field: int) -> None:
    """A smile value of 0 or 3 used to read as 'not smiling': a wrong label, silently."""
    root = make_mtfl(tmp_path / "mtfl")
    lines = (root / "training.txt").read_text().splitlines()
    parts = lines[0].split()
    parts[field - 1] = "7"
    lines[0] = " ".join(parts)
    (root / "training.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"training.txt:1: gender, smile"):
        read_mtfl(root)


def test_symlinked_folders_are_read_once_and_recorded(tmp_path: Path) -> None:
    """os.walk did not enter a symlinked folder: SMILEsmileD with a linked positives7 read
    as 'no images', a linked class sub-folder was skipped; a split file of linked images
    could not be written (their real paths lie outside the root)."""
    elsewhere = tmp_path / "elsewhere"
    for i in range(5):
        _touch(elsewhere / f"{i}.jpg")
    root = tmp_path / "sm" / "SMILEs"
    (root / "positives").mkdir(parents=True)
    os.symlink(elsewhere, root / "positives" / "positives7")
    for i in range(5):
        _touch(root / "negatives" / "negatives7" / f"{i}.jpg")
    samples = read_smilesmiled(tmp_path / "sm", seed=3)
    assert len(samples) == 10 and sum(s.label for s in samples) == 5
    split = write_split_file(samples, tmp_path / "split.csv", root=root)
    assert "positives/positives7/0.jpg" in read_split_file(split)
    folders = tmp_path / "cf"
    _touch(folders / "no_smile" / "x.jpg")
    (folders / "smile").mkdir()
    os.symlink(elsewhere, folders / "smile" / "batch1")
    os.symlink(folders / "smile", folders / "smile" / "loop")  # a cycle is read once
    assert sorted(read_class_folders(folders).labels().tolist()) == [0, 1, 1, 1, 1, 1]


def test_a_partial_smilesmiled_copy_keeps_the_recorded_split(tmp_path: Path) -> None:
    """With seed 0 / 20% the bundled record decides, so images missing from a copy do not
    re-deal the rest (the recipe over 60 of 13,165 images gives another split)."""
    recorded_path = Path(__file__).resolve().parents[1] / "src/duchenne/data"
    recorded = read_split_file(recorded_path / "smilesmiled_split_seed0.csv")
    names = sorted(recorded)[::220]
    for name in names:
        _touch(tmp_path / "SMILEs" / name)
    samples = read_smilesmiled(tmp_path)
    assert samples.stats.notes["split_source"] == "smilesmiled_split_seed0.csv"
    assert {s.path.relative_to(tmp_path / "SMILEs").as_posix(): s.split for s in samples} == {
        n: recorded[n] for n in names
    }
    _touch(tmp_path / "SMILEs" / "positives" / "positives7" / "not_recorded.jpg")
    assert read_smilesmiled(tmp_path).stats.notes["split_source"] == "recipe"
