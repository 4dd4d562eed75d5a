"""Tests for duchenne.io.image: every input kind, every broken input, every pixel mode.

All fixtures are built here in tmp_path or in memory, so the tests need no data files.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, features

from duchenne.errors import ImageLoadError, ImageTooLargeError, UnsupportedFormatError
from duchenne.io import (
    SUPPORTED_EXTENSIONS,
    encode_image,
    image_info,
    iter_image_paths,
    load_image,
    save_image_atomic,
)
from duchenne.io.paths import walk_files
from duchenne.io.sniff import unidentified_error

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- builders


def encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height RGB pixels, with no pixel data (tiny)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")


def noisy_jpeg() -> bytes:
    return encode(Image.fromarray(RGB), "JPEG", quality=95)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- bad inputs

BAD_FILES: list[tuple[str, Callable[[Path], Path], type[Exception], str]] = [
    ("zero-byte", lambda d: write(d, "empty.jpg", b""), ImageLoadError, "is empty (0 bytes)"),
    (
        "truncated-jpeg",
        lambda d: write(d, "cut.jpg", noisy_jpeg()[: len(noisy_jpeg()) // 2]),
        ImageLoadError,
        "truncated",
    ),
    (
        "truncated-png",
        lambda d: write(d, "cut.png", encode(Image.fromarray(RGB), "PNG")[:600]),
        ImageLoadError,
        "truncated",
    ),
    (
        "random-bytes",
        lambda d: write(d, "noise.png", np.random.default_rng(1).bytes(2000)),
        ImageLoadError,
        "not an image",
    ),
    (
        "text-named-jpg",
        lambda d: write(d, "notes.jpg", b"just some text\n"),
        ImageLoadError,
        "text",
    ),
    (
        "pdf",
        lambda d: write(d, "doc.jpg", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"),
        UnsupportedFormatError,
        "PDF",
    ),
    (
        "svg",
        lambda d: write(
            d, "logo.svg", b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>'
        ),
        UnsupportedFormatError,
        "SVG",
    ),
    (
        "heic",
        lambda d: write(d, "phone.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"),
        UnsupportedFormatError,
        "HEIC",
    ),
    ("directory", lambda d: d, ImageLoadError, "is a directory"),
    ("missing", lambda d: d / "nope.jpg", ImageLoadError, "no such file"),
    (  # was "no such file" for a file `ls` lists
        "dangling-symlink",
        lambda d: (d / "link.jpg").symlink_to(d / "gone.jpg") or d / "link.jpg",
        ImageLoadError,
        "link.jpg: broken symbolic link (",
    ),
    # ``iter_image_paths`` passes on a pattern that matched nothing, to be reported here
    ("no-match", lambda d: d / "nope*.jpg", ImageLoadError, "no file matches this pattern"),
    (
        "video",
        lambda d: write(d, "clip.jpg", b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"),
        UnsupportedFormatError,
        "analyse videos with `duchenne video`",
    ),
    (
        "huge-header",
        lambda d: write(d, "bomb.png", png_header_only(100_000, 100_000)),
        ImageTooLargeError,
        "too large",
    ),
]


@pytest.mark.parametrize(
    ("build", "error", "text"),
    [row[1:] for row in BAD_FILES],
    ids=[row[0] for row in BAD_FILES],
)
def test_bad_file_raises_typed_one_line_error_naming_the_file(
    tmp_path: Path, build: Callable[[Path], Path], error: type[Exception], text: str
) -> None:
    path = build(tmp_path)
    with pytest.raises(error) as info:
        load_image(path)
    assert type(info.value) is error  # exactly this class, not a sibling
    message = str(info.value)
    assert text in message
    assert str(path) in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", ImageLoadError),
        (b"\x89PNG\r\n\x1a\n\x00\x00", ImageLoadError),
        (b"%PDF-1.4\n", UnsupportedFormatError),
        (png_header_only(100_000, 100_000), ImageTooLargeError),
    ],
    ids=["empty", "png-magic-only", "pdf", "bomb"],
)
def test_bad_bytes_raise_typed_errors(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        load_image(data)
    assert type(info.value) is error
    assert "<bytes>" in str(info.value)


def test_max_pixels_is_checked_from_the_header_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "big.png", png_header_only(8000, 8000))  # 64 MP, 57 bytes
    assert path.stat().st_size < 100

    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageTooLargeError, match="8000x8000"):
        load_image(path)


@pytest.mark.parametrize(("limit", "ok"), [(24 * 32, True), (24 * 32 - 1, False)])
def test_max_pixels_limit_is_inclusive(limit: int, ok: bool) -> None:
    data = encode(Image.fromarray(RGB), "PNG")
    if ok:
        assert load_image(data, max_pixels=limit).shape == (24, 32, 3)
    else:
        with pytest.raises(ImageTooLargeError):
            load_image(data, max_pixels=limit)


def test_limits_apply_to_arrays_too() -> None:
    with pytest.raises(ImageTooLargeError):
        load_image(RGB, max_pixels=10)


def test_global_pillow_state_is_untouched() -> None:
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, list(warnings.filters))
    for data in (png_header_only(100_000, 100_000), noisy_jpeg()[:500]):
        with pytest.raises(ImageLoadError):
            load_image(data)
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, warnings.filters) == before


# --------------------------------------------------------------------------- pixel modes


def p_with_transparency() -> Image.Image:
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * 759)
    img.putpixel((0, 0), 2)
    return img


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)


def multipage_tiff() -> bytes:
    pages = [Image.new("RGB", (8, 8), c) for c in ((0, 255, 0), (255, 0, 0))]
    return encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])


# (name, encoded bytes, pixel (row, col), expected RGB, tolerance)
MODES = [
    ("rgb-png", encode(Image.fromarray(RGB), "PNG"), (3, 5), tuple(RGB[3, 5]), 0),
    (
        "rgba-half-alpha",
        encode(Image.new("RGBA", (4, 4), (0, 0, 0, 128)), "PNG"),
        (0, 0),
        (127,) * 3,
        0,
    ),
    (
        "rgba-opaque",
        encode(Image.new("RGBA", (4, 4), (10, 20, 30, 255)), "PNG"),
        (1, 1),
        (10, 20, 30),
        0,
    ),
    (
        "rgba-clear",
        encode(Image.new("RGBA", (4, 4), (10, 20, 30, 0)), "PNG"),
        (1, 1),
        (255,) * 3,
        0,
    ),
    ("la", encode(Image.new("LA", (4, 4), (0, 0)), "PNG"), (2, 2), (255,) * 3, 0),
    ("la-opaque", encode(Image.new("LA", (4, 4), (77, 255)), "PNG"), (2, 2), (77,) * 3, 0),
    (
        "p-transparent-index",
        encode(p_with_transparency(), "PNG", transparency=1),
        (1, 1),
        (255,) * 3,
        0,
    ),
    (
        "p-opaque-index",
        encode(p_with_transparency(), "PNG", transparency=1),
        (0, 0),
        (0, 0, 255),
        0,
    ),
    ("p-no-transparency", encode(p_with_transparency(), "PNG"), (1, 1), (255, 0, 0), 0),
    ("l-jpeg", encode(Image.new("L", (16, 16), 90), "JPEG"), (8, 8), (90,) * 3, 2),
    ("bilevel", encode(Image.new("1", (9, 9), 1), "PNG"), (4, 4), (255,) * 3, 0),
    (
        "cmyk-jpeg-cyan",
        encode(Image.new("CMYK", (16, 16), (255, 0, 0, 0)), "JPEG"),
        (8, 8),
        (0, 255, 255),
        3,
    ),
    (
        "cmyk-jpeg-key",
        encode(Image.new("CMYK", (16, 16), (0, 0, 0, 255)), "JPEG"),
        (8, 8),
        (0, 0, 0),
        3,
    ),
    (
        "cmyk-tiff-mixed",
        encode(Image.new("CMYK", (4, 4), (51, 0, 102, 51)), "TIFF"),
        (0, 0),
        (163, 204, 122),
        1,
    ),
    ("animated-gif-frame-0", animated_gif(), (4, 4), (255, 0, 0), 0),
    ("multipage-tiff-page-0", multipage_tiff(), (4, 4), (0, 255, 0), 0),
    ("float-tiff", encode(Image.new("F", (4, 4), 0.5), "TIFF"), (0, 0), (128,) * 3, 0),
    ("float-tiff-0-255", encode(Image.new("F", (4, 4), 200.0), "TIFF"), (0, 0), (200,) * 3, 0),
    (
        "webp-lossless",
        encode(Image.new("RGB", (8, 8), (1, 2, 3)), "WEBP", lossless=True),
        (0, 0),
        (1, 2, 3),
        0,
    ),
    ("bmp", encode(Image.new("RGB", (8, 8), (9, 8, 7)), "BMP"), (0, 0), (9, 8, 7), 0),
]


@pytest.mark.parametrize(
    ("data", "where", "expected", "tol"), [m[1:] for m in MODES], ids=[m[0] for m in MODES]
)
def test_pixel_modes_convert_to_rgb_uint8(
    data: bytes, where: tuple[int, int], expected: tuple[int, ...], tol: int
) -> None:
    out = load_image(data)
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert out.flags.c_contiguous and out.flags.writeable
    got = out[where].astype(int)
    assert np.abs(got - np.array(expected)).max() <= tol, (got, expected)


@pytest.mark.parametrize(
    ("value16", "value8"),
    [(0, 0), (257, 1), (32896, 128), (65535, 255), (1000, 4), (65279, 254)],
)
def test_16bit_png_is_scaled_by_bit_depth_not_clipped(value16: int, value8: int) -> None:
    img = Image.fromarray(np.full((2, 3), value16, dtype=np.uint16))
    assert img.mode == "I;16"
    out = load_image(encode(img, "PNG"))
    assert (out == value8).all()


def test_16bit_png_keeps_full_gradient() -> None:
    ramp = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)  # 0, 257, ..., 65535
    out = load_image(encode(Image.fromarray(ramp), "PNG"))[..., 0]
    np.testing.assert_array_equal(out.ravel(), np.arange(256))  # nothing clipped


def int32_tiff(tmp_path: Path, values: np.ndarray) -> Path:
    """A 32-bit integer TIFF as Pillow writes it (mode "I", BitsPerSample 32, signed)."""
    img = Image.fromarray(values.astype(np.int32))
    assert img.mode == "I"
    path = tmp_path / "int32.tif"
    img.save(path, "TIFF")
    with Image.open(path) as stored:
        assert stored.mode == "I" and stored.tag_v2[258] in (32, (32,))
    return path


def test_32bit_tiff_holding_8bit_values_decodes_them_exactly(tmp_path: Path) -> None:
    ramp = np.add.outer(np.arange(16), np.arange(16) * 16).astype(np.int32)  # 0 ... 255
    out = load_image(int32_tiff(tmp_path, ramp))  # was all black: 255 / (2**32 - 1) -> 0
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], ramp)


def test_32bit_tiff_holding_16bit_values_decodes_like_a_16bit_png(tmp_path: Path) -> None:
    values = np.array([[0, 256, 257, 1000], [32896, 65279, 65534, 65535]])
    out = load_image(int32_tiff(tmp_path, values))
    as_16bit = load_image(encode(Image.fromarray(values.astype(np.uint16)), "PNG"))
    np.testing.assert_array_equal(out, as_16bit)
    assert out[1, 3, 0] == 255 and out[0, 3, 0] == 4


def test_32bit_tiff_beyond_16bit_values_uses_the_full_int32_range(tmp_path: Path) -> None:
    values = np.array([[-5, 0, 1 << 16, 3 << 29, (1 << 31) - 1]])  # 3 << 29: 3/4 of white
    out = load_image(int32_tiff(tmp_path, values))[0, :, 0]
    np.testing.assert_array_equal(out, [0, 0, 0, 191, 255])


def uint32_tiff(values: np.ndarray, sample_format: int | None = 1) -> bytes:
    """A grey TIFF of unsigned 32-bit samples, written by hand (Pillow only writes signed).

    ``sample_format=None`` leaves the SampleFormat tag out (the TIFF default: unsigned).
    """
    data = np.asarray(values, "<u4").tobytes()
    h, w = np.shape(values)
    short = [(256, w), (257, h), (258, 32), (259, 1), (262, 1), (277, 1), (278, h)]
    if sample_format is not None:
        short.append((339, sample_format))
    entries = [struct.pack("<HHIHH", tag, 3, 1, v, 0) for tag, v in short]
    entries += [struct.pack("<HHII", tag, 4, 1, v) for tag, v in [(273, 8), (279, len(data))]]
    entries.sort()  # TIFF wants its tags in ascending order
    ifd = struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", 0)
    return b"II" + struct.pack("<HI", 42, 8 + len(data)) + data + ifd


@pytest.mark.parametrize("sample_format", [1, None], ids=["unsigned", "default-unsigned"])
def test_unsigned_32bit_tiff_above_int32_decodes_on_the_uint32_scale(
    sample_format: int | None,
) -> None:
    values = np.array([[0, 1 << 16, 1 << 31, 3 << 30, (1 << 32) - 1]], np.uint64)
    with Image.open(io.BytesIO(uint32_tiff(values, sample_format))) as img:
        assert img.mode == "I" and np.asarray(img).min() < 0  # what Pillow hands over
    out = load_image(uint32_tiff(values, sample_format))[0, :, 0]  # was all 0 (black)
    np.testing.assert_array_equal(out, [0, 0, 128, 191, 255])


def test_unsigned_32bit_tiff_of_8bit_values_decodes_them_exactly() -> None:
    ramp = np.arange(256).reshape(16, 16)
    np.testing.assert_array_equal(load_image(uint32_tiff(ramp))[..., 1], ramp)


def test_signed_32bit_tiff_keeps_negative_values_black() -> None:
    values = np.array([[0, 1 << 16, 1 << 31, 3 << 30]], np.uint64)  # as int32: <0 from 1 << 31
    out = load_image(uint32_tiff(values, sample_format=2))[0, :, 0]
    np.testing.assert_array_equal(out, [0, 0, 0, 0])  # 2**16 of 2**31 - 1, then negatives


@pytest.mark.parametrize(
    ("orientation", "corner"),
    [(1, (0, 0)), (3, (-1, -1)), (6, (0, -1)), (8, (-1, 0))],
    ids=["upright", "rot180", "rot90cw", "rot90ccw"],
)
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, corner: tuple) -> None:
    stored = np.zeros((20, 40, 3), np.uint8)  # wide, red marker in the stored top-left
    stored[:4, :4] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = write(tmp_path, "photo.jpg", encode(Image.fromarray(stored), "JPEG", exif=exif))

    out = load_image(path)

    swapped = orientation in (6, 8)
    assert out.shape[:2] == ((40, 20) if swapped else (20, 40))
    r, c = corner
    assert out[r, c, 0] > 200 and out[r, c, 1] < 60, f"marker not at {corner}"
    info = image_info(path)
    assert (info.height, info.width) == out.shape[:2]
    assert info.orientation == orientation


# --------------------------------------------------------------------------- numpy inputs

ARRAYS = [
    ("uint8-rgb", RGB, RGB),
    ("uint8-gray", np.full((3, 4), 7, np.uint8), np.full((3, 4, 3), 7, np.uint8)),
    ("uint8-hw1", np.full((3, 4, 1), 9, np.uint8), np.full((3, 4, 3), 9, np.uint8)),
    (
        "uint8-rgba",
        np.array([[[0, 0, 0, 0], [9, 9, 9, 255]]], np.uint8),
        np.array([[[255] * 3, [9] * 3]], np.uint8),
    ),
    (
        "uint16",
        np.array([[0, 257, 65535]], np.uint16),
        np.array([[[0] * 3, [1] * 3, [255] * 3]], np.uint8),
    ),
    ("uint16-big-endian", np.array([[65535]], ">u2"), np.full((1, 1, 3), 255, np.uint8)),
    (
        "float32",
        np.array([[0.0, 0.5, 1.0]], np.float32),
        np.array([[[0] * 3, [128] * 3, [255] * 3]], np.uint8),
    ),
    ("float64-overshoot", np.array([[-0.01, 1.02]]), np.array([[[0] * 3, [255] * 3]], np.uint8)),
    ("float16-rgb", np.full((2, 2, 3), 1.0, np.float16), np.full((2, 2, 3), 255, np.uint8)),
    ("bool", np.array([[True, False]]), np.array([[[255] * 3, [0] * 3]], np.uint8)),
    ("int32-0-255", RGB.astype(np.int32), RGB),
    ("int64-0-255", RGB.astype(np.int64), RGB),
    ("int8-grey", np.array([[0, 127]], np.int8), np.array([[[0] * 3, [127] * 3]], np.uint8)),
    ("uint32-rgba", np.array([[[9, 9, 9, 255]]], np.uint32), np.full((1, 1, 3), 9, np.uint8)),
    ("non-contiguous", RGB[:, ::2], np.ascontiguousarray(RGB[:, ::2])),
]


@pytest.mark.parametrize(("arr", "expected"), [a[1:] for a in ARRAYS], ids=[a[0] for a in ARRAYS])
def test_array_inputs(arr: np.ndarray, expected: np.ndarray) -> None:
    out = load_image(arr)
    assert out.dtype == np.uint8 and out.flags.c_contiguous and out.flags.writeable
    np.testing.assert_array_equal(out, expected)
    assert not np.may_share_memory(out, arr)


BAD_ARRAYS = [
    ("int32-16-bit", np.array([[0, 256, 65535]], np.int32), "got [0, 65535]; for 16-bit"),
    ("int64-negative", np.array([[-1, 200]], np.int64), "[0, 255] (8-bit), got [-1, 200]"),
    ("uint32-12-bit", np.array([[4095]], np.uint32), "np.uint16"),
    ("complex", np.zeros((2, 2), np.complex64), "dtype"),
    ("1d", np.zeros(12, np.uint8), "shape"),
    ("4d", np.zeros((1, 2, 2, 3), np.uint8), "shape"),
    ("2-channels", np.zeros((2, 2, 2), np.uint8), "shape"),
    ("5-channels", np.zeros((2, 2, 5), np.uint8), "shape"),
    ("zero-size", np.zeros((0, 5, 3), np.uint8), "zero size"),
    ("float-0-255", np.full((2, 2), 200.0), "[0, 1]"),
    ("float-nan", np.array([[0.5, np.nan]]), "NaN"),
]


@pytest.mark.parametrize(
    ("arr", "text"), [b[1:] for b in BAD_ARRAYS], ids=[b[0] for b in BAD_ARRAYS]
)
def test_bad_arrays_raise_image_load_error(arr: np.ndarray, text: str) -> None:
    with pytest.raises(ImageLoadError) as info:
        load_image(arr)
    assert text in str(info.value)


# --------------------------------------------------------------------------- JPEG fast path

PHOTO = np.clip(
    np.linspace(0, 255, 96)[None, :, None] + RNG.normal(0, 20, (64, 96, 3)), 0, 255
).astype(np.uint8)


def pillow_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Disable the OpenCV JPEG path so load_image decodes with Pillow alone."""
    monkeypatch.setattr("duchenne.io.image._decode_plain_jpeg", lambda *a: None)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"quality": 90},
        {"quality": 95, "subsampling": 0},
        {"quality": 80, "progressive": True},
        {"quality": 90, "mode": "L"},
    ],
    ids=["420", "444", "progressive", "grey"],
)
def test_plain_jpeg_fast_path_gives_pillows_pixels(
    kwargs: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    kwargs = dict(kwargs)
    img = Image.fromarray(PHOTO).convert(kwargs.pop("mode", "RGB"))
    data = encode(img, "JPEG", **kwargs)
    fast = load_image(data)
    pillow_only(monkeypatch)
    np.testing.assert_array_equal(fast, load_image(data))


def test_jpeg_fast_path_is_taken_for_plain_jpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: calls.append(1) or real(self))
    load_image(encode(Image.fromarray(PHOTO), "JPEG", quality=90))
    assert not calls  # OpenCV decoded it; a PNG goes through Pillow
    load_image(encode(Image.fromarray(PHOTO), "PNG"))
    assert calls


def test_jpeg_with_trailing_bytes_or_truncation_keeps_pillow_behaviour() -> None:
    data = encode(Image.fromarray(PHOTO), "JPEG", quality=90)
    np.testing.assert_array_equal(load_image(data + b"camera-trailer"), load_image(data))
    with pytest.raises(ImageLoadError, match="truncated"):
        load_image(data[: len(data) // 2])


def test_jpeg_read_from_the_streams_current_position() -> None:
    data = encode(Image.fromarray(PHOTO), "JPEG", quality=90)
    stream = io.BytesIO(b"header-to-skip" + data)
    stream.seek(len(b"header-to-skip"))
    np.testing.assert_array_equal(load_image(stream), load_image(data))


# --------------------------------------------------------------------------- source kinds


class NonSeekable(io.RawIOBase):
    """A pipe-like stream: readable, not seekable."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        chunk = self._buf.read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)


SOURCES: list[tuple[str, Callable[[Path, bytes], object]]] = [
    ("str-path", lambda d, b: str(write(d, "a.png", b))),
    ("pathlib", lambda d, b: write(d, "a.png", b)),
    ("bytes", lambda d, b: b),
    ("bytearray", lambda d, b: bytearray(b)),
    ("memoryview", lambda d, b: memoryview(b)),
    ("bytesio", lambda d, b: io.BytesIO(b)),
    ("non-seekable", lambda d, b: NonSeekable(b)),
    ("pil", lambda d, b: Image.open(io.BytesIO(b))),
]


@pytest.mark.parametrize("make", [s[1] for s in SOURCES], ids=[s[0] for s in SOURCES])
def test_every_source_kind_gives_the_same_pixels(tmp_path: Path, make: Callable) -> None:
    source = make(tmp_path, encode(Image.fromarray(RGB), "PNG"))
    np.testing.assert_array_equal(load_image(source), RGB)


def test_open_file_object_is_read_and_left_open(tmp_path: Path) -> None:
    path = write(tmp_path, "a.png", encode(Image.fromarray(RGB), "PNG"))
    with open(path, "rb") as fh:
        np.testing.assert_array_equal(load_image(fh), RGB)
        assert not fh.closed


def test_stream_errors_name_the_stream(tmp_path: Path) -> None:
    path = write(tmp_path, "cut.jpg", noisy_jpeg()[:700])
    with open(path, "rb") as fh, pytest.raises(ImageLoadError, match="cut.jpg"):
        load_image(fh)


def test_pil_input_is_not_closed_or_modified() -> None:
    img = Image.fromarray(RGB)
    out = load_image(img)
    out[:] = 0
    assert np.asarray(img).any() and img.size == (32, 24)


@pytest.mark.parametrize("source", [12, None, [[1, 2]], io.StringIO("x")])
def test_wrong_source_types_are_programming_errors(source: object) -> None:
    with pytest.raises(TypeError):
        load_image(source)  # type: ignore[arg-type]


def test_url_strings_get_a_hint() -> None:
    with pytest.raises(ImageLoadError, match="URLs are not supported"):
        load_image("https://example.com/a.jpg")


# --------------------------------------------------------------------------- paths


def make_tree(root: Path) -> None:
    for rel in [
        "img10.jpg",
        "img2.PNG",
        "notes.txt",
        ".hidden.jpg",
        "._img3.jpg",
        "sub/a.webp",
        "sub/deeper/b.tiff",
        ".git/c.jpg",
        "clip.mp4",
    ]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")


def rel(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() if p.is_absolute() else p.as_posix() for p in paths]


@pytest.mark.parametrize(
    ("inputs", "recursive", "expected"),
    [
        (["."], True, ["img2.PNG", "img10.jpg", "sub/a.webp", "sub/deeper/b.tiff"]),
        (["."], False, ["img2.PNG", "img10.jpg"]),
        (["*.jpg"], True, ["img10.jpg"]),
        (["**/*.tiff"], True, ["sub/deeper/b.tiff"]),
        (["sub"], True, ["sub/a.webp", "sub/deeper/b.tiff"]),
        (["notes.txt"], True, ["notes.txt"]),  # explicit files are kept
        (["missing.jpg", "img2.PNG"], True, ["missing.jpg", "img2.PNG"]),
        (["nothing*.jpg"], True, ["nothing*.jpg"]),  # unmatched pattern kept for reporting
        (
            ["img2.PNG", "*.PNG", "."],
            True,
            ["img2.PNG", "img10.jpg", "sub/a.webp", "sub/deeper/b.tiff"],
        ),
    ],
    ids=[
        "folder",
        "flat",
        "glob",
        "globstar",
        "subfolder",
        "explicit",
        "missing",
        "no-match",
        "dedupe",
    ],
)
def test_iter_image_paths(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    inputs: list[str],
    recursive: bool,
    expected: list[str],
) -> None:
    make_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    got = iter_image_paths(inputs, recursive=recursive)
    assert [os.path.normpath(p) for p in rel(got, tmp_path)] == [
        os.path.normpath(e) for e in expected
    ]


def unlistable(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make ``folder`` act as a folder without read permission, as ``chmod 0`` does for
    a user (root reads it anyway)."""

    def denied(path: object) -> bool:
        return os.path.realpath(os.fspath(path)) == os.path.realpath(folder)  # type: ignore[arg-type]

    scandir, access = os.scandir, os.access

    def guarded_scandir(path: str = ".") -> object:
        if denied(path):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", guarded_scandir)
    monkeypatch.setattr(os, "access", lambda path, mode: not denied(path) and access(path, mode))


def test_a_folder_that_cannot_be_listed_is_reported_not_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "locked").mkdir()
    for name in ("a.jpg", "locked/b.jpg"):
        (tmp_path / name).write_bytes(noisy_jpeg())
    unlistable(monkeypatch, tmp_path / "locked")
    # was [a.jpg]: locked/b.jpg vanished from the results without a word
    assert iter_image_paths(tmp_path) == [tmp_path / "a.jpg", tmp_path / "locked"]
    assert iter_image_paths(tmp_path / "locked") == [tmp_path / "locked"]  # was [] ("no input")
    with pytest.raises(ImageLoadError, match=r"locked: cannot read this folder \(permission"):
        load_image(tmp_path / "locked")


def test_walk_files_warns_of_a_folder_it_cannot_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "locked").mkdir()
    unlistable(monkeypatch, tmp_path / "locked")
    assert list(walk_files(tmp_path, True, frozenset({".jpg"}))) == []
    assert "locked: cannot list this folder (Permission denied)" in caplog.text


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_a_folder_without_read_permission_is_reported(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "b.jpg").write_bytes(noisy_jpeg())
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("this user reads any folder (root)")
        assert iter_image_paths(tmp_path) == [locked]
        with pytest.raises(ImageLoadError, match="cannot read this folder"):
            load_image(locked)
    finally:
        locked.chmod(0o755)


def test_phone_formats_in_a_folder_are_listed_and_those_not_readable_reported(
    tmp_path: Path,
) -> None:
    heic = write(tmp_path, "IMG_0001.HEIC", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")
    write(tmp_path, "IMG_0002.jpg", noisy_jpeg())
    # was [IMG_0002.jpg]: an iPhone's HEIC photos vanished from the results without a word
    assert iter_image_paths(tmp_path) == [heic, tmp_path / "IMG_0002.jpg"]
    with pytest.raises(UnsupportedFormatError, match="HEIC/HEIF files are not supported; conv"):
        load_image(heic)


@pytest.mark.parametrize("brand", [b"avif", b"avis"])
def test_avif_unreadable_by_this_pillow_is_named_not_called_a_video(brand: bytes) -> None:
    head = b"\x00\x00\x00\x20ftyp" + brand + b"\x00\x00\x00\x00avifmif1miafMA1B"
    error = unidentified_error(head, "x.avif")  # was: "video (MP4/MOV) files ..."
    assert isinstance(error, UnsupportedFormatError)
    assert str(error).startswith("x.avif: AVIF files are not supported by this install")


@pytest.mark.skipif(not features.check("avif"), reason="Pillow built without AVIF")
def test_avif_photos_in_a_folder_are_analysed(tmp_path: Path) -> None:
    path = tmp_path / "photo.avif"
    ramp = np.broadcast_to(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (48, 64, 3))
    Image.fromarray(np.ascontiguousarray(ramp)).save(path, quality=90)
    assert iter_image_paths(tmp_path) == [path]  # was []: "no input images"
    assert np.abs(load_image(path).astype(int) - ramp).max() <= 8


def test_iter_image_paths_accepts_a_single_path(tmp_path: Path) -> None:
    make_tree(tmp_path)
    assert len(iter_image_paths(tmp_path)) == 4
    assert ".jpg" in SUPPORTED_EXTENSIONS and ".txt" not in SUPPORTED_EXTENSIONS


# --------------------------------------------------------------------------- encoding


@pytest.mark.parametrize(("fmt", "tol"), [("png", 0), ("PNG", 0), ("jpeg", 40), ("jpg", 40)])
def test_encode_image_round_trips(fmt: str, tol: int) -> None:
    smooth = np.repeat(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], 24, 0).repeat(3, 2)
    back = load_image(encode_image(smooth, fmt, quality=95))
    assert np.abs(back.astype(int) - smooth).max() <= tol


@pytest.mark.parametrize(("fmt", "quality"), [("gif", 90), ("jpeg", 0), ("jpeg", 101)])
def test_encode_image_rejects_bad_arguments(fmt: str, quality: int) -> None:
    with pytest.raises(ValueError):
        encode_image(RGB, fmt, quality=quality)


def test_save_image_atomic(tmp_path: Path) -> None:
    target = tmp_path / "out" / "annotated.png"
    assert save_image_atomic(RGB, target) == target
    np.testing.assert_array_equal(load_image(target), RGB)
    assert sorted(p.name for p in target.parent.iterdir()) == ["annotated.png"]


def test_save_image_atomic_failure_keeps_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "a.jpg"
    target.write_bytes(b"previous")
    with pytest.raises(ImageLoadError):
        save_image_atomic(np.zeros((2, 2, 2), np.uint8), target)
    with pytest.raises(ValueError):
        save_image_atomic(RGB, tmp_path / "a.unknown")
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg"]


def test_premultiplied_grey_alpha_pil_image_loads() -> None:
    """Mode "La" used to fail in Pillow's RGBA conversion, reported as a pipeline bug."""
    img = Image.new("LA", (4, 4), (200, 255)).convert("La")
    np.testing.assert_array_equal(load_image(img), np.full((4, 4, 3), 200, np.uint8))


def test_closed_file_object_is_an_image_load_error(tmp_path: Path) -> None:
    """A closed file used to raise a bare ValueError (an "AnalysisError: bug" in a batch)."""
    path = write(tmp_path, "a.png", encode(Image.fromarray(RGB), "PNG"))
    with open(path, "rb") as fh:
        pass
    with pytest.raises(ImageLoadError, match="a.png: the file object is closed"):
        load_image(fh)
