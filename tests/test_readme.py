"""The README's promises: its two commands and its Python example stay true."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_opens_with_the_two_commands():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert first_block is not None
    assert text.index("```bash") < text.index("\n## ")
    commands = first_block.group(1).strip().splitlines()
    assert commands == [
        './setup.sh && .venv/bin/circuitscope run smollm2-135m "The capital of France is"',
        './setup.sh --dev && .venv/bin/pytest -m "not gpu"',
    ]


def test_ci_runs_the_readme_test_command():
    ci = (README.parent / ".ci" / "run").read_text()
    assert "./setup.sh --dev" in ci
    assert '.venv/bin/pytest -m "not gpu"' in ci


@pytest.mark.slow
def test_readme_python_example_runs():
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert block is not None
    namespace: dict[str, object] = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)
    recording = namespace["recording"]
    frozen = namespace["frozen"]
    ablated = namespace["ablated"]
    diff = (frozen.logits - recording.logits).abs().max().item()  # type: ignore[attr-defined]
    assert diff < 1e-4
    moved = (ablated.logits - recording.logits).abs().max().item()  # type: ignore[attr-defined]
    assert moved > 1e-2


@pytest.mark.slow
def test_readme_trace_example_runs(tmp_path, monkeypatch):
    """The Python `trace` example, with a random sparse transcoder standing in for a
    trained one at the path it names."""
    from circuitscope.models import load_model
    from circuitscope.testing.sparse_random import sparse_random_transcoder

    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(block for block in blocks if "save_trace(" in block)
    loaded = load_model("smollm2-135m")
    transcoder = sparse_random_transcoder(loaded.adapter, loaded.tokenizer, "clt", 128, l0=4.0)
    transcoder.save(tmp_path / "out" / "smollm2-clt" / "transcoder")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(example, "README.md", "exec"), namespace)
    result = namespace["result"]
    graph = result.graph  # type: ignore[attr-defined]
    assert graph.n_logits == 1 and graph.logit_vectors is not None
    assert (tmp_path / "graph_dir" / "capital.json").is_file()
