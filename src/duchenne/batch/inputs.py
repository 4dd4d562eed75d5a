"""Expand batch inputs (files, folders, globs, list files, archives, URIs) into work items.

Why a separate expansion step: a batch job must know every input up front, to show a
progress bar with an ETA, to skip the inputs an earlier run already finished (the
fingerprint of each item is what resume compares), and to hand workers -- local processes
or Ray actors on other machines -- something small and picklable that says where to read
the bytes. Nothing is decoded here; an input that cannot even be listed (a corrupt zip, a
missing URI) becomes an item carrying its error, so it is reported as one failed row like
any bad image instead of stopping the job.

Sources (the ``source`` column of the output) are spelled as follows:

* local files as given (``photos/a.jpg``), folders and globs expanded as
  :func:`duchenne.io.image.iter_image_paths` does, plus video files;
* archive members as ``ARCHIVE::MEMBER`` (``photos.zip::2019/a.jpg``);
* URIs as fsspec spells them (``s3://bucket/a.jpg``, ``file:///data/a.jpg``).
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import tarfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from duchenne.errors import require_extra
from duchenne.io.image import SUPPORTED_EXTENSIONS, iter_image_paths
from duchenne.io.jsonsafe import printable_text
from duchenne.io.paths import walk_files
from duchenne.io.video import VIDEO_EXTENSIONS

__all__ = [
    "ARCHIVE_SUFFIXES",
    "VIDEO_EXTENSIONS",
    "InputItem",
    "MemberLimits",
    "expand_inputs",
    "is_uri",
    "open_binary",
    "read_list_file",
]

ARCHIVE_SUFFIXES: tuple[str, ...] = (
    ".zip",
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz2",
    ".tar.xz",
    ".txz",
)
"""Inputs with these suffixes are opened and their image and video members processed."""

MEMBER_SEP = "::"
"""Separates an archive from a member in a ``source``: ``photos.zip::a/b.jpg``."""

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+://")

MiB = 1 << 20


@dataclass(frozen=True)
class MemberLimits:
    """Largest archive members read, by declared size (checked when listing) and actual
    size (checked when reading; a member never yields more than it declared).

    Why: a zip of 1 MB can declare a 1 GiB image; read into memory it took a worker to
    1.16 GB before failing as "corrupt". Image members are held in memory, video members
    are copied to a temporary file, hence separate caps. A member over its cap becomes
    an error row (``ImageTooLargeError``); the rest of the archive is processed.

    Attributes:
        image_bytes: Cap for image members (``--max-member-mb``, default 256 MiB).
        video_bytes: Cap for video members (``--max-video-member-mb``, default 4 GiB).

    Raises:
        ValueError: A cap below 1 byte.
    """

    image_bytes: int = 256 * MiB
    video_bytes: int = 4096 * MiB

    def __post_init__(self) -> None:
        for name in ("image_bytes", "video_bytes"):
            value = getattr(self, name)
            try:
                ok = not isinstance(value, bool) and value >= 1 and value == int(value)
            except (TypeError, ValueError, OverflowError):  # None, inf, nan
                ok = False
            if not ok:
                raise ValueError(
                    f"{name} must be an integer >= 1 byte (a cap of 0 fails every member), "
                    f"got {value!r}"
                )

    def cap(self, kind: str) -> int:
        """The cap for a member of ``kind`` (``"image"`` or ``"video"``)."""
        return self.video_bytes if kind == "video" else self.image_bytes


@dataclass(frozen=True)
class InputItem:
    """One unit of work: an image or a video, and where its bytes are.

    Attributes:
        source: The name written in the output's ``source`` column (unique per item).
        kind: ``"image"`` or ``"video"``.
        fingerprint: What resume compares to decide whether ``source`` is already done:
            ``size=..;mtime_ns=..`` for local files (or ``sha256=..`` with content
            fingerprints), member size and CRC/mtime for archive members, size and
            modification time or ETag for URIs, ``missing`` for absent files.
        location: Absolute local path or URI of the file (of the archive for members).
        member: Archive member name, or None.
        archive: ``"zip"`` or ``"tar"`` for members, else None.
        offset: Tar members: byte offset of the data in the (decompressed) tar stream.
        size: Size in bytes when known.
        error: Set when the input could not be listed; the item is reported, not analysed.
    """

    source: str
    kind: str
    fingerprint: str
    location: str
    member: str | None = None
    archive: str | None = None
    offset: int | None = None
    size: int | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        # The source is what the output (and resume) spells: undecodable file-name bytes
        # as \xNN escapes, exactly as every sink writes them; ``location`` keeps the
        # real name to open.
        object.__setattr__(self, "source", printable_text(self.source))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for Ray datasets and JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputItem:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__})  # type: ignore[arg-type]


def is_uri(text: str) -> bool:
    """True for ``scheme://...`` inputs (read through fsspec)."""
    return bool(_URI.match(text))


def expand_inputs(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    list_files: Sequence[str | os.PathLike[str]] = (),
    recursive: bool = True,
    fingerprint: str = "stat",
    limits: MemberLimits | None = None,
) -> list[InputItem]:
    """Expand everything the user named into work items, in a stable order.

    Args:
        inputs: Files, folders (recursive), glob patterns, ``@list.txt`` list files,
            zip/tar archives and URIs, in any mix.
        list_files: More list files (``--list FILE``): one input per line; blank lines
            and lines starting with ``#`` are skipped; relative paths are relative to
            the current directory, as for inputs on the command line.
        recursive: Descend into sub-folders of folder inputs.
        fingerprint: ``"stat"`` (size + mtime; cheap) or ``"content"`` (sha256 of the
            bytes of local files; survives copies and touches, costs one read).
        limits: Archive member size caps (None = :class:`MemberLimits` defaults).

    Returns:
        Items in input order; a file reached twice is listed once, under the first name
        it was reached by (``_identity``: ``a.jpg``, ``./a.jpg``, ``/abs/a.jpg`` and a
        symlink to it are one file).

    Raises:
        ValueError: Unknown ``fingerprint`` mode.
        ImageLoadError: A list file cannot be read.
    """
    if fingerprint not in ("stat", "content"):
        raise ValueError(f"fingerprint must be 'stat' or 'content', got {fingerprint!r}")
    texts = [str(i) for i in inputs] + [f"@{f}" for f in list_files]
    out: list[InputItem] = []
    seen: set[str] = set()
    read: set[tuple[str, str | None]] = set()
    ctx = _Expansion(recursive, fingerprint, limits or MemberLimits())
    for item in _expand_all(texts, ctx, depth=0):
        if item.source not in seen and _identity(item) not in read:
            seen.add(item.source)
            read.add(_identity(item))
            out.append(item)
    return out


def _identity(item: InputItem) -> tuple[str, str | None]:
    """The bytes an item reads: its resolved local path (or URI) and archive member.

    Why: sources are spelled as given, so one file named twice (``imgs/../imgs/a.jpg``,
    an absolute path, a symlink) was analysed twice and gave duplicate rows.
    """
    where = item.location if is_uri(item.location) else os.path.realpath(item.location)
    return where, item.member


def read_list_file(path: str | os.PathLike[str]) -> list[str]:
    """The inputs listed in a text file (one a line, ``#`` comments and blanks skipped).

    Raises:
        ImageLoadError: The file cannot be read.
    """
    from duchenne.errors import ImageLoadError

    try:
        with open_binary(str(path)) as fh:
            text = fh.read().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImageLoadError(f"{path}: cannot read the list of inputs ({exc})") from None
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def open_binary(location: str) -> IO[bytes]:
    """Open a local path or a URI for binary reading (URIs need fsspec)."""
    if is_uri(location):
        fsspec = require_extra("fsspec", "ray")
        return fsspec.open(location, "rb").open()
    return open(location, "rb")


# --------------------------------------------------------------------------- expansion


@dataclass(frozen=True)
class _Expansion:
    """The settings every step of one expansion shares."""

    recursive: bool
    fingerprint: str
    limits: MemberLimits


def _expand_all(texts: Iterable[str], ctx: _Expansion, depth: int) -> Iterator[InputItem]:
    for text in texts:
        if text.startswith("@") and len(text) > 1:
            if depth > 8:
                raise ValueError(f"{text}: list files nested too deeply")
            yield from _expand_all(read_list_file(text[1:]), ctx, depth + 1)
        elif is_uri(text):
            yield from _expand_uri(text, ctx)
        else:
            yield from _expand_local(text, ctx)


def _expand_local(text: str, ctx: _Expansion) -> Iterator[InputItem]:
    """A local file, folder or glob (images through ``iter_image_paths``, plus videos)."""
    path = Path(text)
    if path.is_dir():
        yield from _local_folder(path, ctx)
        return
    if path.is_file() and _archive_suffix(path.name):
        yield from _local_entry(path, ctx)
        return
    if path.exists() or not glob.has_magic(text):
        yield _local_file(path, ctx.fingerprint)  # a missing file is reported by the worker
        return
    matches = sorted(glob.glob(text, recursive=True))
    if not matches:
        yield _local_file(path, ctx.fingerprint)
    for match in map(Path, matches):
        if match.is_dir():
            yield from _local_folder(match, ctx)
        elif not match.name.startswith(".") and _media_kind(match.name) is not None:
            yield from _local_entry(match, ctx)


def _local_folder(folder: Path, ctx: _Expansion) -> Iterator[InputItem]:
    for path in iter_image_paths([folder], recursive=ctx.recursive):
        yield _local_file(path, ctx.fingerprint)
    for path in _walk_videos(folder, ctx.recursive):
        yield _local_file(path, ctx.fingerprint)


def _local_entry(path: Path, ctx: _Expansion) -> Iterator[InputItem]:
    if _archive_suffix(path.name):
        yield from _expand_archive(str(path), os.path.abspath(path), _stat_fp(path), ctx.limits)
    else:
        yield _local_file(path, ctx.fingerprint)


def _local_file(path: Path, fingerprint: str) -> InputItem:
    """An item for one local image or video file (which may be missing)."""
    kind = "video" if path.suffix.lower() in VIDEO_EXTENSIONS else "image"
    location = os.path.abspath(path)
    try:
        st = path.stat()
    except OSError:
        return InputItem(str(path), kind, "missing", location)
    fp = f"size={st.st_size};mtime_ns={st.st_mtime_ns}"
    if fingerprint == "content" and path.is_file():
        fp = _content_fp(path, fp)
    return InputItem(str(path), kind, fp, location, size=st.st_size)


def _walk_videos(root: Path, recursive: bool) -> list[Path]:
    """Video files under ``root`` (hidden ones skipped, symlinked folders followed once),
    sorted."""
    # a folder it cannot list is reported by the image walk (an error row), not twice
    return sorted(walk_files(root, recursive, VIDEO_EXTENSIONS, lambda exc: None))


def _stat_fp(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return "missing"
    return f"size={st.st_size};mtime_ns={st.st_mtime_ns}"


def _content_fp(path: Path, fallback: str) -> str:
    """sha256 of the file's bytes (``fallback`` if it cannot be read: reported later)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return fallback
    return f"sha256={digest.hexdigest()}"


def _media_kind(name: str) -> str | None:
    """``image``, ``video`` or ``archive`` from a file name; None for anything else."""
    suffix = Path(name).suffix.lower()
    if suffix in SUPPORTED_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return "archive" if _archive_suffix(name) else None


def _archive_suffix(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


# --------------------------------------------------------------------------- archives


def _expand_archive(
    source: str, location: str, archive_fp: str, limits: MemberLimits
) -> Iterator[InputItem]:
    """Image and video members of a zip or tar archive (local path or URI); a member
    larger than its cap is an item carrying that error."""
    try:
        with open_binary(location) as fh:
            if zipfile.is_zipfile(fh):
                members = list(_zip_members(fh))
                kind = "zip"
            else:
                fh.seek(0)
                members = list(_tar_members(fh))
                kind = "tar"
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError, ValueError) as exc:
        reason = f"ImageLoadError: {source}: cannot read the archive ({exc})"
        yield InputItem(source, "image", archive_fp, location, error=reason)
        return
    for name, fp, offset, size in members:
        media = "video" if Path(name).suffix.lower() in VIDEO_EXTENSIONS else "image"
        member_source = f"{source}{MEMBER_SEP}{member_display_name(name)}"
        error = None
        if size > limits.cap(media):
            error = (
                f"ImageTooLargeError: {member_source}: archive member of {size} bytes exceeds "
                f"the {media} member limit of {limits.cap(media)} bytes"
            )
        yield InputItem(
            member_source,
            media,
            fp,
            location,
            member=name,
            archive=kind,
            offset=offset,
            size=size,
            error=error,
        )


def member_display_name(name: str) -> str:
    """A member name without ``./`` and empty parts: ``tar -C dir -cf x.tar .`` stores
    ``./a.jpg``, which is the file ``a.jpg``, not a hidden one."""
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def _member_wanted(name: str) -> bool:
    parts = member_display_name(name).split("/")
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return False
    return _media_kind(parts[-1]) in ("image", "video")


def _zip_members(fh: IO[bytes]) -> Iterator[tuple[str, str, int | None, int]]:
    """Wanted members; of several with one name, only the last.

    Why: workers open members by name, which ``zipfile`` (like ``unzip``) resolves to the
    last of them, so listing the first would check and fingerprint one file and analyse
    another (or fail it as "larger than it declares").
    """
    with zipfile.ZipFile(fh) as zf:
        for info in zf.infolist():
            if zf.getinfo(info.filename) is not info:  # a later member has this name
                continue
            if not info.is_dir() and _member_wanted(info.filename):
                fp = f"size={info.file_size};crc={info.CRC:08x}"
                yield info.filename, fp, None, info.file_size


def _tar_members(fh: IO[bytes]) -> Iterator[tuple[str, str, int | None, int]]:
    with tarfile.open(fileobj=fh, mode="r:*") as tf:
        for info in tf:
            if info.isreg() and not info.issparse() and _member_wanted(info.name):
                fp = f"size={info.size};mtime={int(info.mtime)}"
                yield info.name, fp, info.offset_data, info.size


# --------------------------------------------------------------------------- URIs


def _expand_uri(uri: str, ctx: _Expansion) -> Iterator[InputItem]:
    """A URI file, folder or glob, listed through fsspec."""
    fsspec = require_extra("fsspec", "ray")
    fs, path = fsspec.core.url_to_fs(uri)
    try:
        if glob.has_magic(path):
            names = sorted(fs.glob(path))
        elif fs.isdir(path):
            names = sorted(fs.find(path, maxdepth=None if ctx.recursive else 1))
            names = [n for n in names if _media_kind(n.rsplit("/", 1)[-1]) in ("image", "video")]
        else:
            names = [path]
    except OSError as exc:
        yield InputItem(uri, "image", "missing", uri, error=f"ImageLoadError: {uri}: {exc}")
        return
    explicit = len(names) == 1 and names[0] == path
    for name in names:
        base = name.rstrip("/").rsplit("/", 1)[-1]
        if not explicit and (base.startswith(".") or _media_kind(base) is None):
            continue
        full = uri if explicit else fs.unstrip_protocol(name)
        fp, size = _uri_fp(fs, name)
        if _archive_suffix(base) and fp != "missing":
            yield from _expand_archive(full, full, fp, ctx.limits)
            continue
        kind = "video" if Path(base).suffix.lower() in VIDEO_EXTENSIONS else "image"
        yield InputItem(full, kind, fp, full, size=size)


def _uri_fp(fs: Any, name: str) -> tuple[str, int | None]:
    """Size plus the first change marker the filesystem reports (mtime, ETag ...)."""
    try:
        info = fs.info(name)
    except (OSError, ValueError):
        return "missing", None
    size = info.get("size")
    marker = next(
        (
            info[k]
            for k in ("mtime", "LastModified", "last_modified", "updated", "ETag", "etag", "md5")
            if info.get(k) is not None
        ),
        None,
    )
    return f"size={size};changed={marker}", size
