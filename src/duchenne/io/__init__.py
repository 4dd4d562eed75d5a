"""Input and output: decode any image input to RGB ``uint8``; write result records atomically.

Why a package of its own: every entry point (CLI, server, batch jobs, training) reads
images and writes results, and all of them must fail the same way on a bad input and
never leave half-written files behind.
"""

from __future__ import annotations

from duchenne.io.atomic import atomic_write
from duchenne.io.image import (
    DEFAULT_MAX_PIXELS,
    SUPPORTED_EXTENSIONS,
    ImageInfo,
    ImageSource,
    encode_image,
    image_info,
    iter_image_paths,
    load_image,
    save_image_atomic,
)
from duchenne.io.jsonsafe import flatten_record, to_json_text, to_jsonable
from duchenne.io.sinks import FORMATS, RecordWriter, infer_format, write_records

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "SUPPORTED_EXTENSIONS",
    "ImageInfo",
    "ImageSource",
    "RecordWriter",
    "atomic_write",
    "encode_image",
    "flatten_record",
    "image_info",
    "infer_format",
    "iter_image_paths",
    "load_image",
    "save_image_atomic",
    "to_json_text",
    "to_jsonable",
    "write_records",
]
