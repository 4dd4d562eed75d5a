"""Names of the files the service sends: taken from the client's upload, not a job id.

Why: a user who uploads ``party.mp4`` and saves its results expects ``party.csv``, not
``3f2a9c....csv``. The name travels in ``Content-Disposition``, so a browser, the
dashboard (which reads it from its fetched downloads) and ``curl -OJ`` all get it. The
client's file name can hold anything, so only a cleaned stem of it is used.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

#: Runs of characters a download name does not keep (all but letters, digits and ``-_.``).
_UNSAFE = re.compile(r"[^\w.-]+")


def file_stem(filename: str | None, limit: int = 64) -> str:
    """The stem of a client's file name, safe to name a download with.

    Folders (``../x.mp4``, ``C:\\x.mp4``) are dropped, accents are composed (macOS sends
    ``e`` + U+0301 for ``é``), every run of characters other than letters, digits and
    ``-_.`` becomes one ``_`` (no quotes, separators or control characters reach a header
    or a file system), leading and trailing ``._-`` go (no hidden file, no option-like
    name), and the stem is cut to ``limit`` characters. Empty when nothing is left.

    Examples:
        >>> file_stem("my party (1).MP4")
        'my_party_1'
        >>> file_stem("../.mp4")
        ''
    """
    if not filename:
        return ""
    name = re.split(r"[/\\]", unicodedata.normalize("NFC", filename))[-1]
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return _UNSAFE.sub("_", stem).strip("._-")[:limit].rstrip("._-")


def content_disposition(name: str, kind: str = "attachment") -> dict[str, str]:
    """The ``Content-Disposition`` header naming a download ``name``, written as
    Starlette's ``FileResponse`` writes it: ``filename*`` (RFC 6266) for a name that is not
    plain ASCII. ``kind`` ``inline`` names a document a browser still shows (a polled
    status), ``attachment`` one it saves.

    Examples:
        >>> content_disposition("party.csv")
        {'Content-Disposition': 'attachment; filename="party.csv"'}
        >>> content_disposition("fête.json", "inline")
        {'Content-Disposition': "inline; filename*=utf-8''f%C3%AAte.json"}
    """
    quoted = quote(name)
    if quoted == name:
        return {"Content-Disposition": f'{kind}; filename="{name}"'}
    return {"Content-Disposition": f"{kind}; filename*=utf-8''{quoted}"}
