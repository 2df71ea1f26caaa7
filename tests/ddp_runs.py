"""One process against two under torchrun (gloo, CPU): the harness the DDP tests share."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def torchrun() -> Path:
    """The environment's torchrun; skips the calling test when it is missing."""
    path = Path(sys.executable).parent / "torchrun"
    if not path.exists():
        pytest.skip("torchrun not installed")
    return path


def run_one_and_two(program: list[str], one: list[str], two: list[str]) -> tuple[str, str]:
    """Run `program` (["script.py"] or ["-m", "module"]) with python alone, then under
    torchrun with two processes, each with its own arguments and one thread per process;
    their standard outputs. A run that fails fails the test with the end of its stderr."""
    two_processes = [str(torchrun()), "--standalone", "--nproc-per-node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    outputs = []
    for command in ([sys.executable, *program, *one], [*two_processes, *program, *two]):
        done = subprocess.run(command, env=env, capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        outputs.append(done.stdout.decode())
    return outputs[0], outputs[1]
