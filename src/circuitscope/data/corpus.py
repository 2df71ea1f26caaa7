"""Corpus sources as a stream of documents, split into training and held-out text.

A source is one of:

- "default": the offline corpus installed from Debian packages (`default_corpus`);
  when none is installed, an HF dataset if a hub is reachable, else an error
  saying what to install or pass;
- a path: a text, JSONL or Parquet file, or a folder of them;
- "hf:NAME" or "hf:NAME:CONFIG": an HF dataset streamed with `datasets` (needs a hub).

Every document goes to exactly one split, by a hash of its text: about 1 in
`HELDOUT_EVERY` is held out for evaluation, the rest is for training.
"""

from __future__ import annotations

import random
import sys
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

from circuitscope.data.default_corpus import (
    INSTALL_HINT,
    find_default_corpus,
    split_fortunes,
)
from circuitscope.data.text_files import CorpusReport, chunk_text, expand_paths, read_documents
from circuitscope.errors import CircuitscopeError

Split = Literal["train", "heldout", "all"]
HELDOUT_EVERY = 20
HF_FALLBACK = "hf:Salesforce/wikitext:wikitext-103-raw-v1"
"""The dataset streamed when no default corpus is installed and a hub answers."""


def in_split(text: str, split: Split) -> bool:
    """Whether document `text` belongs to `split` (a fixed hash of its text decides)."""
    if split == "all":
        return True
    heldout = zlib.crc32(text.encode("utf-8", "replace")) % HELDOUT_EVERY == 0
    return heldout == (split == "heldout")


def iter_documents(
    sources: Sequence[str],
    split: Split = "train",
    seed: int = 0,
    report: CorpusReport | None = None,
    text_field: str = "text",
) -> Iterator[str]:
    """Documents of every source in turn, those of `split` only. Raises if none at all."""
    report = report if report is not None else CorpusReport()
    if not sources:
        raise CircuitscopeError("no corpus given: pass 'default', files or folders, or hf:NAME")
    count = 0
    for source in sources:
        for document in _source_documents(source, seed, report, text_field):
            if in_split(document, split):
                count += 1
                report.documents += 1
                yield document
    if count == 0:
        raise CircuitscopeError(
            f"the corpus {list(sources)} has no usable {split} documents "
            f"({len(report.skipped)} files skipped)"
        )


def _source_documents(
    source: str, seed: int, report: CorpusReport, text_field: str
) -> Iterator[str]:
    if source == "default":
        yield from default_documents(seed, report)
    elif source.startswith("hf:"):
        yield from hf_documents(source, text_field)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise CircuitscopeError(f"no such corpus file or folder: {source}")
        for file in expand_paths(path):
            yield from read_documents(file, report, text_field)


def default_documents(seed: int, report: CorpusReport) -> Iterator[str]:
    """The installed default corpus, documents mixed in a seeded order; falls back if absent."""
    corpus = find_default_corpus()
    if corpus.empty:
        print(
            f"note: the offline default corpus is not installed ({INSTALL_HINT}); "
            f"trying the HF dataset {HF_FALLBACK[3:]}",
            file=sys.stderr,
        )
        yield from hf_documents(HF_FALLBACK, "text", fallback=True)
        return
    documents: list[str] = []
    for path in corpus.python_docs:
        documents.extend(read_documents(path, report))
    for path in corpus.fortune_files:
        text = "".join(read_documents(path, report))
        documents.extend(split_fortunes(text))
    random.Random(seed).shuffle(documents)
    yield from documents


def hf_documents(source: str, text_field: str, fallback: bool = False) -> Iterator[str]:
    """Stream an HF dataset's `text_field` (split "train"). source: hf:NAME[:CONFIG]."""
    parts = source[3:].split(":")
    name, config = parts[0], (parts[1] if len(parts) > 1 else None)
    try:
        import datasets  # type: ignore[import-not-found]  # pyright: ignore[reportMissingImports]
    except ImportError:
        raise CircuitscopeError(
            _no_corpus(fallback) + "streaming an HF dataset needs `pip install datasets`"
        ) from None
    try:
        stream = datasets.load_dataset(name, config, split="train", streaming=True)
        for record in stream:
            value = record.get(text_field) if isinstance(record, dict) else None
            if isinstance(value, str) and value.strip():
                yield from chunk_text(value)
    except CircuitscopeError:
        raise
    except Exception as error:  # network and hub errors come in many types
        raise CircuitscopeError(
            _no_corpus(fallback) + f"cannot stream HF dataset {name!r}: {type(error).__name__}"
        ) from None


def _no_corpus(fallback: bool) -> str:
    if not fallback:
        return ""
    return f"no offline corpus is installed ({INSTALL_HINT}), pass your own text files; "
