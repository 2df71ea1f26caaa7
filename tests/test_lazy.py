"""Packages export their names lazily, and unknown names fail clearly."""

import subprocess
import sys

import pytest


def test_lazy_names_resolve_and_unknown_ones_fail():
    import circuitscope.models as models
    import circuitscope.transcoders as transcoders
    from circuitscope.models.loading import load_model
    from circuitscope.transcoders.transcoder import Transcoder

    assert models.load_model is load_model and transcoders.Transcoder is Transcoder
    with pytest.raises(AttributeError, match="'circuitscope.models' has no attribute 'nope'"):
        _ = models.nope  # type: ignore[attr-defined]


def test_cli_help_does_not_import_torch():
    code = "import sys, circuitscope.cli as c; c.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
