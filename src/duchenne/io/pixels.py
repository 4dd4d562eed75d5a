"""Pixel conversion: any Pillow mode or numpy array to RGB ``uint8`` (H, W, 3).

Why a module of its own: :mod:`duchenne.io.image` decides *what* to decode and how it may
fail; this module holds the one set of rules for turning decoded samples into the array
every model reads -- 16-bit and 12-bit data scaled with rounding, ``[0, 1]`` floats
scaled (0-255 floats refused), other integer arrays read as 8-bit when they hold 0-255
(values beyond refused), 32-bit integer files by the depth their values imply (unsigned
ones unsigned), CMYK through its ICC profile, alpha composited on white.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from duchenne.errors import ImageLoadError, UnsupportedFormatError

__all__ = ["array_to_rgb", "pil_to_rgb"]

_FLOAT_TOLERANCE = 0.05  # overshoot of float images clipped silently (resampling ringing)


def pil_to_rgb(img: Image.Image, label: str) -> np.ndarray:
    """Convert any Pillow mode to RGB ``uint8`` (rules: :mod:`duchenne.io.image` docstring)."""
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        arr = _integer_samples(img)
        return array_to_rgb(arr, label, bits=_integer_bits(img, arr))
    if mode == "F":
        return array_to_rgb(_unit_float(np.asarray(img)), label)
    if mode == "CMYK":
        img = _cmyk_to_rgb(img)
    elif "A" in mode or "a" in mode or "transparency" in img.info:
        if mode == "La":  # premultiplied grey: Pillow converts it to "LA" and nothing else
            img = img.convert("LA")
        img = img.convert("RGBA")
    elif mode in ("1", "L"):
        return array_to_rgb(np.asarray(img), label)  # bool / uint8 grey
    elif mode != "RGB":
        img = _convert_rgb(img, label)
    arr = np.array(img)  # one copy, writable, C-contiguous
    return arr if arr.shape[2] == 3 else array_to_rgb(arr, label)


def _unit_float(arr: np.ndarray) -> np.ndarray:
    """A float image *file* (TIFF mode ``F``) on the 0-255 scale, brought to [0, 1].

    Why only files: a file cannot be told to use uint8 instead, and values in [0, 255]
    beyond 1 leave no doubt about the scale; a float array from the Python API keeps the
    strict [0, 1] rule, where the caller can convert it.
    """
    finite = arr[np.isfinite(arr)]
    if finite.size and finite.min() >= 0.0 and 1 + _FLOAT_TOLERANCE < finite.max() <= 255.0:
        return arr / np.float32(255.0)
    return arr


def _convert_rgb(img: Image.Image, label: str) -> Image.Image:
    """Pillow's own conversion for the remaining modes (P, YCbCr, LAB, HSV, RGBX ...)."""
    try:
        return img.convert("RGB")
    except ValueError:
        raise UnsupportedFormatError(f"{label}: unsupported pixel mode {img.mode!r}") from None


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    """Convert CMYK via its ICC profile when present (print CMYK is not device CMYK)."""
    icc = img.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            return ImageCms.profileToProfile(img, src, dst, outputMode="RGB")
        except (ImportError, OSError, ValueError, ImageCms.PyCMSError):
            pass  # broken or unusable profile: fall back to the formula
    return img.convert("RGB")  # Pillow: (255 - C) * (255 - K) / 255


def _integer_samples(img: Image.Image) -> np.ndarray:
    """The samples of a Pillow ``I;16*`` / ``I`` image, unsigned when the file says so.

    Why: Pillow has no unsigned 32-bit mode and reads a TIFF's unsigned 32-bit samples
    (SampleFormat 1, the TIFF default) into its signed mode ``I``, so every value above
    ``2**31 - 1`` comes out negative and would clip to black. The bits are the file's own;
    viewing them as ``uint32`` gives the stored values back.
    """
    arr = np.asarray(img)
    if arr.dtype == np.int32 and _bit_depth(img) == 32 and _sample_format(img) == 1:
        return arr.view(np.uint32)
    return arr


def _sample_format(img: Image.Image) -> int | None:
    """TIFF SampleFormat (1 unsigned, 2 signed, 3 float; 1 when absent), None if no TIFF."""
    tags = getattr(img, "tag_v2", None)
    if tags is None:
        return None
    value = tags.get(339, 1)
    if isinstance(value, tuple):
        value = value[0] if value else 1
    return value if isinstance(value, int) else None


def _integer_bits(img: Image.Image, arr: np.ndarray) -> int:
    """Bit depth to scale a Pillow ``I;16*`` / ``I`` image by.

    ``I;16*`` images and ``I`` images that declare a depth narrower than 32 bits (12-bit
    data, a signed 16-bit TIFF) use that depth. A depth of 32 bits, or none (mode ``I``
    from other formats), only names the int32 container Pillow, ImageJ or numpy wrote, not
    the range of the data: such files almost always hold 8- or 16-bit values, and scaling
    0-255 by ``2**32 - 1`` gives a black image. The depth is then the one the values imply
    (:func:`_container_bits`): a peak of at most 255 is 8-bit, at most 65535 16-bit (so it
    decodes exactly like an ``I;16`` file), else the full non-negative range of the
    samples' type (int32, or uint32 for unsigned files).
    """
    declared = _bit_depth(img)
    if declared is not None and declared < 32:
        return declared
    return _container_bits(arr)


def _bit_depth(img: Image.Image) -> int | None:
    """Bits per sample declared by a TIFF (e.g. 12-bit data in 16-bit words), else None."""
    tags = getattr(img, "tag_v2", None)
    bits = tags.get(258) if tags is not None else None
    if isinstance(bits, tuple):
        bits = bits[0] if bits else None
    if isinstance(bits, int) and 1 <= bits <= 32:
        return bits
    return 16 if img.mode.startswith("I;16") else None


def array_to_rgb(arr: np.ndarray, label: str, bits: int | None = None) -> np.ndarray:
    """Convert a grey/RGB/RGBA array of a supported dtype to RGB ``uint8``.

    Args:
        arr: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array.
        label: Name used in error messages.
        bits: Bit depth of integer data wider than 8 bits, when known.

    Returns:
        RGB ``uint8`` (H, W, 3), C-contiguous and writable (may be ``arr`` itself).

    Raises:
        ImageLoadError: Unsupported shape, dtype, or float values outside ``[0, 1]``.
    """
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageLoadError(
            f"{label}: expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageLoadError(f"{label}: image has zero size (shape {arr.shape})")
    u8 = _to_uint8(arr, label, bits)
    if u8.ndim == 2:
        return np.repeat(u8[:, :, None], 3, axis=2)
    if u8.shape[2] == 4:
        return _composite_on_white(u8)
    if u8.flags.c_contiguous and u8.flags.writeable:
        return u8
    return np.array(u8, order="C")


def _to_uint8(arr: np.ndarray, label: str, bits: int | None) -> np.ndarray:
    """Scale any supported dtype to ``uint8`` without clipping meaningful range."""
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if kind == "u" and size == 1:
        return arr
    if kind == "b":
        return arr.astype(np.uint8) * np.uint8(255)
    if kind == "u" and size == 2:
        return _scale_bits(arr, bits or 16)
    if kind == "f":
        return _float_to_uint8(arr, label)
    if kind in "iu" and bits is not None:  # Pillow "I" modes: depth from the file
        return _scale_bits(arr, bits)
    if kind in "iu":
        return _int_to_uint8(arr, label)
    raise ImageLoadError(
        f"{label}: unsupported dtype {arr.dtype}; use uint8, uint16, bool or float in [0, 1]"
    )


def _int_to_uint8(arr: np.ndarray, label: str) -> np.ndarray:
    """Read an integer array whose dtype names no depth (int32, int64 ...) as 8-bit.

    Why 0-255 and nothing else: such arrays come from ``img.astype(int)``, arithmetic on
    uint8 pixels or ``np.asarray`` of a Pillow image, and 0-255 is the one scale every
    image library agrees on for them (matplotlib's rule for integer RGB); the values
    prove it. Beyond 255 the depth is a guess (10, 12, 14 or 16 bits?) that would
    silently darken or brighten the photo, so the caller, who knows it, is asked to pick
    the dtype that names it -- as 0-255 floats are refused rather than guessed.
    """
    lo, hi = int(arr.min()), int(arr.max())
    if lo >= 0 and hi <= 255:
        return arr.astype(np.uint8)
    raise ImageLoadError(
        f"{label}: {arr.dtype} image values must be in [0, 255] (8-bit), got [{lo}, {hi}]; "
        "for 16-bit data pass arr.astype(np.uint16), for other depths scale to uint8 "
        "(e.g. (arr * 255 // max_value).astype(np.uint8))"
    )


def _container_bits(arr: np.ndarray) -> int:
    """Smallest of 8/16 bits or the container holding the data (a 32-bit one says nothing
    of its range).

    Why not a min-max stretch: a step between the usual depths keeps a dark photo dark and
    gives every frame of one camera the same scale. The container's white is its largest
    value: ``2**31 - 1`` for signed int32 (negative samples clip to black), ``2**32 - 1``
    for the unsigned samples of :func:`_integer_samples`.
    """
    peak = int(arr.max())
    return 8 if peak <= 0xFF else 16 if peak <= 0xFFFF else np.iinfo(arr.dtype).max.bit_length()


def _scale_bits(arr: np.ndarray, bits: int) -> np.ndarray:
    """Map ``[0, 2**bits - 1]`` onto ``[0, 255]`` with rounding (``65535 -> 255``)."""
    top = (1 << bits) - 1
    if bits == 8:
        return np.clip(arr, 0, 255).astype(np.uint8)
    if bits <= 16:  # x * 255 fits in uint32
        x = np.clip(arr, 0, top).astype(np.uint32)
        return ((x * 255 + top // 2) // top).astype(np.uint8)
    x = np.clip(arr, 0, top).astype(np.float64)
    return np.floor(x * (255.0 / top) + 0.5).astype(np.uint8)


def _float_to_uint8(arr: np.ndarray, label: str) -> np.ndarray:
    """Scale ``[0, 1]`` floats to ``uint8``; refuse NaN/inf and the 0-255 float mistake."""
    if not np.isfinite(arr).all():
        raise ImageLoadError(f"{label}: float image contains NaN or infinity")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -_FLOAT_TOLERANCE or hi > 1 + _FLOAT_TOLERANCE:
        raise ImageLoadError(
            f"{label}: float image values must be in [0, 1], got [{lo:g}, {hi:g}] "
            "(for 0-255 data pass a uint8 array)"
        )
    work = np.float64 if arr.dtype.itemsize > 4 else np.float32
    x = np.clip(arr.astype(work, copy=False), 0.0, 1.0)
    return np.floor(x * 255.0 + 0.5).astype(np.uint8)


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """Blend ``uint8`` RGBA onto white: ``rgb * a + 255 * (1 - a)``, rounded."""
    rgb = rgba[:, :, :3].astype(np.uint16)
    alpha = rgba[:, :, 3:4].astype(np.uint16)
    out = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
    return out.astype(np.uint8)
