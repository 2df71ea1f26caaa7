"""Corpus sources: files of each kind, bad files skipped and counted, splits, the default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from circuitscope.data import corpus as corpus_module
from circuitscope.data.corpus import in_split, iter_documents
from circuitscope.data.default_corpus import DefaultCorpus, find_default_corpus, split_fortunes
from circuitscope.data.text_files import CorpusReport, chunk_text
from circuitscope.errors import CircuitscopeError

PROSE = "The miller counted the sacks of grain by the door, one by one, until dusk.\n"


def test_text_jsonl_and_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    (tmp_path / "a.txt").write_text(PROSE * 3)
    (tmp_path / "b.jsonl").write_text(
        json.dumps({"text": "first record"})
        + "\nnot json\n"
        + json.dumps({"text": "second"})
        + "\n"
    )
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "binary.bin").write_bytes(b"\x00\x01\x02abc")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (tmp_path / "nofield.jsonl").write_text(json.dumps({"body": "x"}) + "\n")
    report = CorpusReport()
    docs = list(iter_documents([str(tmp_path)], "all", report=report))
    assert docs == [(PROSE * 3).strip(), "first record", "second"]
    assert report.files_read == 2 and report.documents == 3
    assert sorted(Path(p).name for p in report.skipped) == [
        "binary.bin",
        "empty.txt",
        "latin1.txt",
        "nofield.jsonl",
    ]
    assert "not UTF-8" in report.skipped[str(tmp_path / "latin1.txt")]
    assert capsys.readouterr().err.count("warning: skipped") == 4


def test_parquet_documents(tmp_path: Path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["one doc", "", "two doc"]}), tmp_path / "d.parquet")
    assert list(iter_documents([str(tmp_path / "d.parquet")], "all")) == ["one doc", "two doc"]


def test_no_usable_documents_is_an_error(tmp_path: Path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(CircuitscopeError, match="no usable train documents"):
        list(iter_documents([str(tmp_path)], "train", report=CorpusReport(quiet=True)))
    with pytest.raises(CircuitscopeError, match="no such corpus file"):
        list(iter_documents([str(tmp_path / "missing")]))


def test_splits_partition_the_documents():
    docs = [f"document number {i}" for i in range(2000)]
    held = [d for d in docs if in_split(d, "heldout")]
    train = [d for d in docs if in_split(d, "train")]
    assert len(held) + len(train) == 2000 and not set(held) & set(train)
    assert 60 < len(held) < 140  # about 1 in 20


def test_chunking_and_fortunes():
    text = "\n\n".join(f"paragraph {i} " + "word " * 100 for i in range(30))
    chunks = chunk_text(text, chunk_chars=2000)
    assert 5 <= len(chunks) <= 10 and all(len(c) < 2600 for c in chunks)
    assert " ".join(chunks).split() == text.split()
    assert split_fortunes("one\nline\n%\ntwo\n%\n\n%\n") == ["one\nline", "two"]


def test_default_corpus_found_in_fake_install(tmp_path: Path):
    docs = tmp_path / "python3.11" / "html" / "_sources" / "library"
    docs.mkdir(parents=True)
    (docs / "os.rst.txt").write_text(PROSE)
    fortunes = tmp_path / "fortunes"
    fortunes.mkdir()
    (fortunes / "literature").write_text("A classic.\n%\nA horse!\n")
    (fortunes / "literature.dat").write_bytes(b"\x00\x00")
    (fortunes / "art").write_text("  /\\_/\\ \n")
    found = find_default_corpus(str(tmp_path / "python3*/html/_sources"), str(fortunes))
    assert [p.name for p in found.python_docs] == ["os.rst.txt"]
    assert [p.name for p in found.fortune_files] == ["literature"]


def test_missing_default_corpus_says_so(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(corpus_module, "find_default_corpus", lambda: DefaultCorpus())
    monkeypatch.setitem(__import__("sys").modules, "datasets", None)  # no `datasets` installed
    with pytest.raises(CircuitscopeError, match="no offline corpus is installed"):
        list(iter_documents(["default"]))


@pytest.mark.skipif(find_default_corpus().empty, reason="default corpus not installed")
def test_installed_default_corpus_is_english_prose():
    docs = list(iter_documents(["default"], "train", report=CorpusReport(quiet=True)))
    held = list(iter_documents(["default"], "heldout", report=CorpusReport(quiet=True)))
    assert len(docs) > 1000 and len(held) > 50
    assert len(set(docs)) > 0.95 * len(docs)  # not repeated text
    text = " ".join(docs[:300])
    assert text.count(" the ") > 300
