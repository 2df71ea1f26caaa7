"""The train command keeps freed blocks for the next step (glibc)."""

from __future__ import annotations

import sys

import pytest

from circuitscope.allocator import reuse_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_training_allocator_setting_applies_on_linux():
    assert reuse_freed_memory() is True
