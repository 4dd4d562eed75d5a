"""Expanding batch inputs: folders, globs, list files, archives, URIs, fingerprints."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from duchenne.batch.inputs import InputItem, MemberLimits, expand_inputs, read_list_file
from duchenne.errors import ImageLoadError


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for name in ("a/1.jpg", "a/10.jpg", "a/2.png", "a/deep/3.jpg", "a/clip.mp4", "a/notes.txt"):
        (tmp_path / name).write_bytes(b"x" * 10)
    (tmp_path / "a" / ".hidden.jpg").write_bytes(b"x")
    return tmp_path


def sources(items: list[InputItem]) -> list[str]:
    return [i.source for i in items]


def test_folder_recursive_images_then_videos(tree: Path) -> None:
    items = expand_inputs([str(tree / "a")])
    names = [Path(s).relative_to(tree).as_posix() for s in sources(items)]
    assert names == ["a/1.jpg", "a/2.png", "a/10.jpg", "a/deep/3.jpg", "a/clip.mp4"]
    assert [i.kind for i in items] == ["image"] * 4 + ["video"]
    assert all(os.path.isabs(i.location) for i in items)
    assert all(i.fingerprint.startswith("size=10;mtime_ns=") for i in items)


def test_a_folder_that_cannot_be_listed_is_one_error_item(tree: Path, monkeypatch) -> None:
    """Its photos used to vanish from the results without a word."""
    scandir, locked = os.scandir, os.path.realpath(tree / "a" / "deep")

    def guarded_scandir(path: str = ".") -> object:
        if os.path.realpath(path) == locked:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", guarded_scandir)
    items = expand_inputs([str(tree / "a")])
    names = [Path(s).relative_to(tree).as_posix() for s in sources(items)]
    assert names == ["a/1.jpg", "a/2.png", "a/10.jpg", "a/deep", "a/clip.mp4"]  # deep: once


def test_symlinked_folders_are_followed_once(tree: Path) -> None:
    """A library assembled from links (``more -> elsewhere``) lost those photos and
    videos; a link cycle must not hang the scan nor list a file twice."""
    elsewhere = tree / "elsewhere"
    elsewhere.mkdir()
    for name in ("4.jpg", "clip2.mp4"):
        (elsewhere / name).write_bytes(b"x" * 10)
    (tree / "a" / "more").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "loop").symlink_to(tree / "a", target_is_directory=True)
    names = [
        Path(s).relative_to(tree).as_posix() for s in sources(expand_inputs([str(tree / "a")]))
    ]
    assert names == [
        "a/1.jpg", "a/2.png", "a/10.jpg", "a/deep/3.jpg", "a/more/4.jpg", "a/clip.mp4",
        "a/more/clip2.mp4",
    ]  # fmt: skip


def test_glob_list_file_and_duplicates(tree: Path, monkeypatch) -> None:
    monkeypatch.chdir(tree)
    Path("list.txt").write_text("# comment\n\na/1.jpg\n  a/deep/3.jpg  \na/missing.jpg\n")
    Path("more.txt").write_text("a/2.png\n")
    items = expand_inputs(["a/*.jpg", "@list.txt"], list_files=["more.txt"])
    assert sources(items) == ["a/1.jpg", "a/10.jpg", "a/deep/3.jpg", "a/missing.jpg", "a/2.png"]
    assert items[3].fingerprint == "missing"
    assert read_list_file("list.txt") == ["a/1.jpg", "a/deep/3.jpg", "a/missing.jpg"]
    with pytest.raises(ImageLoadError, match="nope.txt"):
        expand_inputs(["@nope.txt"])


def test_one_file_named_several_ways_is_listed_once(tree: Path, monkeypatch) -> None:
    monkeypatch.chdir(tree)
    os.symlink("a/1.jpg", "link.jpg")
    spellings = ["a/1.jpg", "./a/1.jpg", "a/deep/../1.jpg", str(tree / "a/1.jpg"), "link.jpg"]
    items = expand_inputs([*spellings, "a/*.jpg", "missing.jpg", "./missing.jpg"])
    assert sources(items) == ["a/1.jpg", "a/10.jpg", "missing.jpg"]  # the first spelling


def test_content_fingerprint_ignores_touch(tree: Path) -> None:
    path = tree / "a" / "1.jpg"
    before = expand_inputs([str(path)], fingerprint="content")[0].fingerprint
    stat_before = expand_inputs([str(path)])[0].fingerprint
    os.utime(path, (1, 1))
    assert expand_inputs([str(path)], fingerprint="content")[0].fingerprint == before
    assert expand_inputs([str(path)])[0].fingerprint != stat_before
    assert before.startswith("sha256=")


def _zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x/one.jpg", b"1111")
        zf.writestr("x/two.png", b"22")
        zf.writestr("x/readme.txt", b"skip")
        zf.writestr("__MACOSX/x/._one.jpg", b"skip")
        zf.writestr("x/clip.avi", b"vid")


def _tar(path: Path, mode: str) -> None:
    with tarfile.open(path, mode) as tf:
        for name, data in (("p/one.jpg", b"1111"), ("p/.hidden.jpg", b"h"), ("p/two.png", b"22")):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tf.addfile(info, io.BytesIO(data))


def test_zip_and_tar_members(tmp_path: Path) -> None:
    _zip(tmp_path / "photos.zip")
    _tar(tmp_path / "photos.tar.gz", "w:gz")
    items = expand_inputs([str(tmp_path / "photos.zip"), str(tmp_path / "*.tar.gz")])
    assert sources(items) == [
        f"{tmp_path}/photos.zip::x/one.jpg",
        f"{tmp_path}/photos.zip::x/two.png",
        f"{tmp_path}/photos.zip::x/clip.avi",
        f"{tmp_path}/photos.tar.gz::p/one.jpg",
        f"{tmp_path}/photos.tar.gz::p/two.png",
    ]
    assert items[2].kind == "video" and items[0].archive == "zip" and items[3].archive == "tar"
    assert items[0].fingerprint.startswith("size=4;crc=")
    assert items[3].fingerprint == "size=4;mtime=1700000000" and items[3].offset is not None


def test_corrupt_archive_is_one_failed_item(tmp_path: Path) -> None:
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    (item,) = expand_inputs([str(tmp_path / "broken.zip")])
    assert item.error is not None and "cannot read the archive" in item.error


def test_file_uris_through_fsspec(tree: Path) -> None:
    pytest.importorskip("fsspec")
    _zip(tree / "photos.zip")
    items = expand_inputs([f"file://{tree}/a", f"file://{tree}/photos.zip"])
    names = [s.split(str(tree))[-1] for s in sources(items)]
    assert names == [
        "/a/1.jpg",
        "/a/10.jpg",
        "/a/2.png",
        "/a/clip.mp4",
        "/a/deep/3.jpg",
        "/photos.zip::x/one.jpg",
        "/photos.zip::x/two.png",
        "/photos.zip::x/clip.avi",
    ]
    assert all(s.startswith("file://") for s in sources(items))
    assert items[0].fingerprint.startswith("size=10;changed=")
    (missing,) = expand_inputs([f"file://{tree}/nope.jpg"])
    assert missing.fingerprint == "missing"


def test_item_round_trips_through_a_dict() -> None:
    item = InputItem("a.zip::b.jpg", "image", "size=1", "/x/a.zip", "b.jpg", "zip", None, 1)
    assert InputItem.from_dict(item.to_dict()) == item


def test_tar_made_with_dot_lists_its_members(tmp_path: Path) -> None:
    """``tar -C photos -cf p.tar .`` stores ``./a.jpg``: a file, not a hidden one."""
    with tarfile.open(tmp_path / "p.tar", "w") as tf:
        for name, data in (("./a.jpg", b"1"), ("./sub/b.png", b"22"), ("./.hidden.jpg", b"h")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    items = expand_inputs([str(tmp_path / "p.tar")])
    assert sources(items) == [f"{tmp_path}/p.tar::a.jpg", f"{tmp_path}/p.tar::sub/b.png"]
    assert [i.member for i in items] == ["./a.jpg", "./sub/b.png"]  # what the archive holds


def test_zip_members_of_one_name_are_listed_as_the_one_a_worker_reads(tmp_path: Path) -> None:
    """Of two members named alike, the first was listed (size, CRC) and the last read,
    which then failed as "larger than it declares" or was analysed under the wrong
    fingerprint."""
    import warnings

    from duchenne.batch.worker import _ArchiveCache

    with warnings.catch_warnings(), zipfile.ZipFile(tmp_path / "d.zip", "w") as zf:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        zf.writestr("a.jpg", b"old")
        zf.writestr("b.jpg", b"b")
        zf.writestr("a.jpg", b"newer")
    items = expand_inputs([str(tmp_path / "d.zip")])
    assert [i.member for i in items] == ["b.jpg", "a.jpg"]
    assert items[1].size == 5 and items[1].fingerprint.startswith("size=5;")
    cache = _ArchiveCache()
    try:
        assert cache.read(items[1]) == b"newer"
    finally:
        cache.close()


def test_oversized_members_are_error_items(tmp_path: Path) -> None:
    """Declared sizes over the caps become error items before anything is read."""
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.jpg", bytes(3000))
        zf.writestr("small.jpg", bytes(10))
        zf.writestr("clip.mp4", bytes(3000))
    limits = MemberLimits(image_bytes=1000, video_bytes=5000)
    big, small, clip = expand_inputs([str(tmp_path / "bomb.zip")], limits=limits)
    assert big.error and big.error.startswith("ImageTooLargeError:") and "3000 bytes" in big.error
    assert small.error is None and clip.error is None
    (clip,) = [i for i in expand_inputs([str(tmp_path / "bomb.zip")]) if i.kind == "video"]
    assert clip.error is None


def test_non_utf8_names_are_escaped_sources(tmp_path: Path) -> None:
    """A file name that is not UTF-8 gets a writable source; the location still opens it."""
    raw = os.fsencode(tmp_path) + b"/caf\xe9.jpg"
    try:
        with open(raw, "wb") as fh:
            fh.write(b"x")
    except OSError:
        pytest.skip("this filesystem refuses non-UTF-8 names")
    (item,) = expand_inputs([str(tmp_path)])
    assert item.source == f"{tmp_path}/caf\\xe9.jpg"
    item.source.encode("utf-8")
    assert Path(item.location).read_bytes() == b"x"
