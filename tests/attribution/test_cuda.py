"""The CUDA path: the same graph as on the CPU (run with `pytest -m gpu` where a GPU is)."""

from pathlib import Path

import pytest
import torch

from circuitscope.cli import main
from circuitscope.graph.files import load_graph
from circuitscope.testing.tiny_graphs import write_tiny_folders

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_tiny_folders(tmp_path_factory.mktemp("cuda"))


def _trace(folders: tuple[Path, Path], out: Path, *extra: str) -> None:
    model, transcoder = folders
    args = ["trace", str(model), str(transcoder), PROMPT, "-o", str(out), "--no-progress"]
    assert main([*args, *extra]) == 0


@pytest.mark.parametrize("budget", [[], ["--max-feature-nodes", "24"]])
def test_a_cuda_graph_equals_the_cpu_graph(folders, tmp_path, budget):
    _trace(folders, tmp_path / "cpu", "--device", "cpu", *budget)
    _trace(folders, tmp_path / "cuda", "--device", "cuda", *budget)
    cpu, cuda = load_graph(tmp_path / "cpu"), load_graph(tmp_path / "cuda")
    assert [cpu.node_key(i) for i in range(cpu.n_nodes)] == [
        cuda.node_key(i) for i in range(cuda.n_nodes)
    ]
    scale = float(cpu.edges.abs().max())
    torch.testing.assert_close(cuda.edges, cpu.edges, rtol=0, atol=1e-4 * scale)
    assert cuda.metadata["config"]["device"] == "cuda"


def test_a_row_buffer_past_its_limit_works_on_cuda(folders, tmp_path):
    _trace(
        folders,
        tmp_path / "g",
        "--device",
        "cuda",
        "--max-feature-nodes",
        "8",
        "--row-buffer-mb",
        "0.012",
    )
    graph = load_graph(tmp_path / "g")
    assert graph.n_features == 8
    assert graph.metadata["selection"]["kept_columns"] is not None
