"""Name what undecodable bytes are, for one-line errors (PDF, SVG, HEIC, video, text ...).

Why: "cannot identify image file" helps nobody; a user who uploaded a PDF or a video
should be told so. :mod:`duchenne.io.image` calls :func:`unidentified_error` when Pillow
does not recognise the data.
"""

from __future__ import annotations

from duchenne.errors import ImageLoadError, UnsupportedFormatError

__all__ = ["error_reason", "image_kind", "unidentified_error"]

_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
_AVIF_BRANDS = (b"avif", b"avis")

_HINTS = {  # what to do, by the first word of the kind
    # a video given to the photo analysis: say where videos go, in every front end
    "video": "; analyse videos with `duchenne video`, analyze_video() or POST /v1/videos",
    # Pillow reads AVIF when built with libavif, so only some installs end up here
    "AVIF": " by this install (its Pillow has no AVIF support); convert to JPEG or PNG",
    "HEIC/HEIF": "; convert to JPEG or PNG (phones can export JPEG)",
}


def unidentified_error(head: bytes, label: str) -> ImageLoadError:
    """Explain why Pillow did not recognise the data, as precisely as the bytes allow."""
    kind = _unsupported_kind(head)
    if kind:
        hint = _HINTS.get(kind.split(" ")[0], "")
        return UnsupportedFormatError(f"{label}: {kind} files are not supported{hint}")
    looks_like = image_kind(head)
    if looks_like:
        return ImageLoadError(f"{label}: looks like a {looks_like} but is corrupt or truncated")
    if _looks_like_text(head):
        return ImageLoadError(f"{label}: contains text, not image data")
    return ImageLoadError(f"{label}: not an image file (unrecognised data)")


def _unsupported_kind(head: bytes) -> str | None:
    """Name recognised file kinds that are not raster images Pillow reads."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"%PDF-" in head:
        return "PDF"
    if text.startswith(b"<svg") or (
        text.startswith((b"<?xml", b"<!doctype svg")) and b"<svg" in text
    ):
        return "SVG"
    if head[4:8] == b"ftyp":
        if head[8:12] in _AVIF_BRANDS:
            return "AVIF"
        return "HEIC/HEIF" if head[8:12] in _HEIF_BRANDS else "video (MP4/MOV)"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "video (AVI)"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video (Matroska/WebM)"
    if head.startswith(b"PK\x03\x04"):
        return "ZIP archive"
    return None


def image_kind(head: bytes) -> str | None:
    """Name the image format whose magic bytes ``head`` starts with, if any (the video
    reader refuses a still image by this, not by its file name)."""
    magics = {
        b"\xff\xd8\xff": "JPEG",
        b"\x89PNG\r\n\x1a\n": "PNG",
        b"GIF8": "GIF",
        b"BM": "BMP",
        b"II*\x00": "TIFF",
        b"MM\x00*": "TIFF",
    }
    for magic, name in magics.items():
        if head.startswith(magic):
            return name
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WebP"
    return None


def _looks_like_text(head: bytes) -> bool:
    """True for data that decodes as UTF-8 text without control bytes."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not any(ord(c) < 32 and c not in "\t\r\n\f" for c in text)


def error_reason(exc: BaseException) -> str:
    """One-line reason from a Pillow exception (some have empty messages)."""
    msg = str(exc).splitlines()[0] if str(exc) else ""
    return msg or type(exc).__name__
