"""A reader of the features folder written from the format description alone (not our code)."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from pathlib import Path


def independent_read(folder: Path, layer: int, index: int) -> dict:
    """As circuit-tracer's page: index -> offsets -> byte range -> <I length -> zlib -> JSON."""
    index_data = json.loads(gzip.decompress((folder / "index.json.gz").read_bytes()))
    entry = index_data[layer]
    start, end = entry["offsets"][index], entry["offsets"][index + 1]
    with open(folder / entry["filename"], "rb") as f:
        f.seek(start)
        chunk = f.read(end - start + 1)  # the page asks for an inclusive range
    (length,) = struct.unpack("<I", chunk[:4])
    return json.loads(zlib.decompress(chunk[4 : 4 + length]).decode("utf-8"))
