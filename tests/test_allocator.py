import sys

import pytest

from circuitscope.allocator import return_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_the_mmap_threshold_is_set_on_linux():
    assert return_freed_memory() is True


def test_passes_up_to_the_largest_heap_block_reuse_it():
    from circuitscope.allocator import LARGEST_HEAP_BLOCK, policy_for_passes

    assert LARGEST_HEAP_BLOCK == 32 * 2**20
    assert policy_for_passes(32 * 32 * 576 * 4) == "reuse"  # a 32-token batch of 32
    assert policy_for_passes(LARGEST_HEAP_BLOCK) == "reuse"
    assert policy_for_passes(LARGEST_HEAP_BLOCK + 1) == "return"
    assert policy_for_passes(32 * 512 * 576 * 4) == "return"  # 512 tokens


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_the_policy_for_passes_is_applied_on_linux():
    from circuitscope.allocator import set_policy_for_passes

    try:
        assert set_policy_for_passes(1 << 20) == "reuse"
    finally:
        assert return_freed_memory() is True  # the CLI's default again
