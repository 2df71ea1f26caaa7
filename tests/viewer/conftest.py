"""Fixtures for the viewer: a traced tiny-model folder with cards, a running server,
and headless Chromium (browser tests skip with the reason when it is missing)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from viewer_data import feature_keys

from circuitscope.cli import main
from circuitscope.testing.tiny_cards import write_tiny_cards
from circuitscope.testing.tiny_graphs import write_tiny_folders
from circuitscope.viewer.headless import browser_missing, start_chromium
from circuitscope.viewer.server import ViewerServer
from circuitscope.viewer.trace_folder import GraphSource, open_source

PROMPT = "The capital of France is"
FRENCH_PROMPT = "La capitale de la France est"


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model folder, transcoder folder) of a tiny random llama and its CLT."""
    return write_tiny_folders(tmp_path_factory.mktemp("viewer-model"))


@pytest.fixture(scope="session")
def traced_template(tiny_folders, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trace folder (`circuitscope trace`) with cards for its features in features/."""
    model, transcoder = tiny_folders
    out = tmp_path_factory.mktemp("viewer-trace") / "capital"
    args = ["trace", str(model), str(transcoder), PROMPT, "-o", str(out), "--no-progress"]
    assert main([*args, "--slug", "capital"]) == 0
    write_tiny_cards(out / "features", feature_keys(json.loads((out / "capital.json").read_text())))
    return out


@pytest.fixture(scope="session")
def compare_templates(
    tiny_folders, traced_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """Two trace folders of one transcoder to compare: a copy of `traced_template`
    ("capital") and the prompt in French ("capitale"), each with cards in features/ and
    supernode suggestions (supernodes.json)."""
    import shutil

    model, transcoder = tiny_folders
    root = tmp_path_factory.mktemp("viewer-compare")
    english = Path(shutil.copytree(traced_template, root / "capital"))
    french = root / "capitale"
    args = ["trace", str(model), str(transcoder), FRENCH_PROMPT, "-o", str(french)]
    assert main([*args, "--no-progress", "--slug", "capitale"]) == 0
    document = json.loads((french / "capitale.json").read_text())
    write_tiny_cards(french / "features", feature_keys(document))
    for folder in (english, french):
        assert main(["supernodes", str(folder), "--no-check"]) == 0
    return english, french


@pytest.fixture
def compare_dirs(compare_templates: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """Fresh copies of the two folders of `compare_templates`."""
    import shutil

    english, french = (Path(shutil.copytree(p, tmp_path / p.name)) for p in compare_templates)
    return english, french


@pytest.fixture
def trace_dir(traced_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the trace folder (tests write into it)."""
    import shutil

    return Path(shutil.copytree(traced_template, tmp_path / "capital"))


class Served:
    """A ViewerServer running in a thread."""

    def __init__(self, sources: list[GraphSource], **kwargs: Any) -> None:
        self.server = ViewerServer(("127.0.0.1", 0), sources, **kwargs)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve() -> Iterator[Any]:
    """serve(paths...) -> Served; every server is stopped after the test."""
    running: list[Served] = []

    def start(*paths: Path, **kwargs: Any) -> Served:
        served = Served([open_source(p) for p in paths], **kwargs)
        running.append(served)
        return served

    yield start
    for served in running:
        served.close()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    reason = browser_missing()
    if reason:
        pytest.skip(f"browser tests need headless Chromium: {reason}")
    driver = start_chromium()
    yield driver
    driver.quit()
