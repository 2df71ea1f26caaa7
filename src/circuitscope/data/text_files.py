"""Reading the user's text, JSONL and Parquet files as documents; bad files are skipped.

A bad file (binary, empty, not UTF-8, unreadable, no text column) never stops a
run: it is recorded in a `CorpusReport` with its reason and a warning is printed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
CHUNK_CHARS = 4000
"""Plain text files are cut into documents of about this many characters, at blank lines."""


@dataclass
class CorpusReport:
    """What a corpus read: files used, files skipped (with reasons), documents."""

    files_read: int = 0
    documents: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    """path -> why it was skipped."""
    quiet: bool = False

    def skip(self, path: Path | str, reason: str) -> None:
        self.skipped[str(path)] = reason
        if not self.quiet:
            print(f"warning: skipped {path}: {reason}", file=sys.stderr)

    def summary(self) -> str:
        text = f"{self.documents} documents from {self.files_read} files"
        if self.skipped:
            text += f"; {len(self.skipped)} files skipped (see warnings)"
        return text


def expand_paths(path: Path) -> list[Path]:
    """`path` itself, or every non-hidden file under a folder, sorted."""
    if path.is_dir():
        return sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
    return [path]


def read_documents(path: Path, report: CorpusReport, text_field: str = "text") -> Iterator[str]:
    """The documents of one file, by suffix: JSONL/Parquet records or plain-text chunks."""
    suffix = path.suffix.lower()
    try:
        if suffix in PARQUET_SUFFIXES:
            documents = list(_parquet_documents(path, text_field))
        elif suffix in JSONL_SUFFIXES:
            documents = list(_jsonl_documents(path, text_field))
        else:
            documents = chunk_text(_read_text(path))
    except _BadFile as error:
        report.skip(path, str(error))
        return
    except OSError as error:
        report.skip(path, f"cannot read ({error.strerror or error})")
        return
    if not documents:
        report.skip(path, "no text in it")
        return
    report.files_read += 1
    yield from documents


class _BadFile(Exception):
    pass


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if not data.strip():
        raise _BadFile("empty")
    if b"\x00" in data[:8192]:
        raise _BadFile("binary (NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _BadFile(f"not UTF-8 text (byte {error.start})") from None


def chunk_text(text: str, chunk_chars: int = CHUNK_CHARS) -> list[str]:
    """Cut text into documents of about `chunk_chars` characters at blank lines."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for paragraph in text.split("\n\n"):
        if not paragraph.strip():
            continue
        current.append(paragraph)
        size += len(paragraph) + 2
        if size >= chunk_chars:
            chunks.append("\n\n".join(current).strip())
            current, size = [], 0
    if current:
        chunks.append("\n\n".join(current).strip())
    return [chunk for chunk in chunks if chunk]


def _jsonl_documents(path: Path, text_field: str) -> Iterator[str]:
    text = _read_text(path)
    good = bad = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            bad += 1
            continue
        value = record.get(text_field) if isinstance(record, dict) else None
        if isinstance(value, str) and value.strip():
            good += 1
            yield value
        else:
            bad += 1
    if good == 0:
        raise _BadFile(f"no JSON line with a text field {text_field!r} ({bad} bad lines)")


def _parquet_documents(path: Path, text_field: str) -> Iterator[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise _BadFile("reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        table = pq.read_table(path, columns=[text_field])
    except KeyError:
        raise _BadFile(f"no column {text_field!r}") from None
    except Exception as error:  # pyarrow raises many types for bad files
        raise _BadFile(f"not a readable Parquet file ({type(error).__name__})") from None
    for value in table.column(text_field).to_pylist():
        if isinstance(value, str) and value.strip():
            yield value
