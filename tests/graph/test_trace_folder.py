"""The trace folder's owner: `-o` never destroys what is not a trace, a new trace replaces
the old one whole, and `validate` reads folders written before the owner existed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from circuitscope.cli import main
from circuitscope.graph.trace_folder import TraceFolder, check_slug, document_path, slug_of
from circuitscope.outputs import write_atomically
from circuitscope.testing.tiny_graphs import write_tiny_folders

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_tiny_folders(tmp_path_factory.mktemp("folders"))


def _checksums(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _trace(model: Path, transcoder: Path, out: Path, *extra: str) -> int:
    return main(
        ["trace", str(model), str(transcoder), PROMPT, "-o", str(out), "--no-progress", *extra]
    )


def test_output_into_a_transcoder_folder_is_refused_and_changes_nothing(folders, capsys):
    model, transcoder = folders
    before = _checksums(transcoder)
    assert _trace(model, transcoder, transcoder) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds something other than a trace" in err
    assert _checksums(transcoder) == before


def test_output_onto_a_file_is_refused(folders, tmp_path, capsys):
    model, transcoder = folders
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    assert _trace(model, transcoder, target) == 2
    assert "is a file" in capsys.readouterr().err and target.read_text() == "mine"


def test_a_new_trace_replaces_the_previous_one_whole(folders, tmp_path):
    model, transcoder = folders
    out = tmp_path / "g"
    assert _trace(model, transcoder, out, "--slug", "first") == 0
    (out / "my-notes.md").write_text("kept")  # not a file of a trace: left alone
    assert _trace(model, transcoder, out, "--slug", "second") == 0
    names = sorted(path.name for path in out.iterdir())
    assert "first.json" not in names and "second.json" in names and "my-notes.md" in names
    assert document_path(out) == out / "second.json"
    assert not [name for name in names if name.startswith(".")]  # no temporary files left


def test_slugs_stay_inside_the_folder():
    assert slug_of("The capital of France is") == "the-capital-of-france-is"
    assert slug_of("   ") == "prompt" and slug_of("Graph") == "graph-prompt"
    for bad in ("../../escape", "/abs", ".hidden", "a/b", "x.json", "config", ""):
        with pytest.raises(Exception, match="plain name|another file"):
            check_slug(bad)


def test_atomic_write_leaves_the_old_file_when_it_fails(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("old")

    with pytest.raises(TypeError):
        write_atomically(path, 12345)  # type: ignore[arg-type]
    assert path.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def _make_old_style(folder: Path) -> None:
    """As the code before the trace-folder owner wrote it: no logit vectors, no slug, the
    config inside the graph's metadata, transcoder recorded as typed (relative)."""
    config = json.loads((folder / "config.json").read_text())
    for name in ("graph", "pruned"):
        tensors = load_file(str(folder / f"{name}.safetensors"))
        tensors.pop("logit_vectors")
        save_file(tensors, str(folder / f"{name}.safetensors"))
        info = json.loads((folder / f"{name}.json").read_text())
        metadata = info["metadata"]
        metadata.pop("slug")
        metadata["config"] = config
        metadata["transcoder"] = config["transcoder"]
        (folder / f"{name}.json").write_text(json.dumps(info))


def test_validate_reads_a_folder_written_before_the_owner(folders, tmp_path, monkeypatch, capsys):
    model, transcoder = folders
    out = tmp_path / "old"
    assert _trace(model, transcoder, out, "--contrast", " the", " of") == 0
    _make_old_style(out)
    trace = TraceFolder.open(out)
    assert trace.graph().logit_vectors is None and document_path(out) is not None
    monkeypatch.chdir(tmp_path)
    assert main(["validate", str(out), "--top-n", "4", "-o", str(tmp_path / "v")]) == 0
    report = json.loads((tmp_path / "v" / "validation.json").read_text())
    assert len(report["nodes"]) == 4


def test_validate_from_another_directory(folders, tmp_path, monkeypatch):
    """Recorded paths are resolved: the folder validates from anywhere."""
    model, transcoder = folders
    monkeypatch.chdir(model.parent)
    out = tmp_path / "g"
    assert (
        main(["trace", model.name, transcoder.name, PROMPT, "-o", str(out), "--no-progress"]) == 0
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["validate", str(out), "--top-n", "3", "-o", str(tmp_path / "v")]) == 0
