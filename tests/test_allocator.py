import ctypes
import os
import sys

import pytest
import torch

from circuitscope.allocator import return_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_the_mmap_threshold_is_set_on_linux():
    assert return_freed_memory() is True


def test_passes_up_to_the_largest_heap_block_reuse_it():
    from circuitscope.allocator import HEAP_PASS_LIMIT, LARGEST_HEAP_BLOCK, policy_for_passes

    assert LARGEST_HEAP_BLOCK == 32 * 2**20
    assert policy_for_passes(32 * 32 * 576 * 4) == "reuse"  # a 32-token batch of 32
    assert policy_for_passes(LARGEST_HEAP_BLOCK) == "reuse"
    assert policy_for_passes(LARGEST_HEAP_BLOCK + 1) == "heap passes"
    assert policy_for_passes(32 * 512 * 576 * 4) == "heap passes"  # 512 tokens
    assert policy_for_passes(HEAP_PASS_LIMIT) == "heap passes"
    assert policy_for_passes(HEAP_PASS_LIMIT + 1) == "return"
    assert policy_for_passes(32 * 1024 * 576 * 4) == "return"  # 1024 tokens


def test_heap_passes_can_be_asked_for_or_refused_past_the_largest_heap_block():
    from circuitscope.allocator import LARGEST_HEAP_BLOCK, policy_for_passes

    long, medium = 32 * 1024 * 576 * 4, 32 * 512 * 576 * 4
    assert policy_for_passes(long, "always") == "heap passes"
    assert policy_for_passes(medium, "never") == "return"
    assert policy_for_passes(LARGEST_HEAP_BLOCK, "never") == "reuse"  # small: always reused
    assert policy_for_passes(LARGEST_HEAP_BLOCK, "always") == "reuse"
    with pytest.raises(ValueError, match="heap_passes"):
        policy_for_passes(long, "sometimes")  # type: ignore[arg-type]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_the_policy_for_passes_is_applied_on_linux():
    from circuitscope.allocator import set_policy_for_passes

    try:
        assert set_policy_for_passes(1 << 20) == "reuse"
    finally:
        assert return_freed_memory() is True  # the CLI's default again


class _Mallinfo2(ctypes.Structure):
    _fields_ = [  # noqa: RUF012 (ctypes' own layout attribute)
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _mallinfo() -> _Mallinfo2:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _Mallinfo2
    return libc.mallinfo2()


def _mapped_bytes_holding(n_bytes: int) -> int:
    """glibc's bytes in mmapped blocks while a tensor of `n_bytes` is alive (allocated,
    not touched: no pages are made)."""
    block = torch.empty(n_bytes, dtype=torch.uint8)
    mapped = int(_mallinfo().hblkhd)
    del block
    return mapped


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_long_passes_take_their_blocks_from_the_heap_only_inside_a_pass():
    from circuitscope.allocator import heap_during_pass, set_policy_for_passes

    try:
        assert set_policy_for_passes(32 * 512 * 576 * 4) == "heap passes"
        # Larger than all the free memory the heap holds (earlier tests leave some), so
        # no free block can serve it: outside a pass it must get its own mapping.
        block = int(_mallinfo().fordblks) + (64 << 20)
        before = _mapped_bytes_holding(0)
        assert _mapped_bytes_holding(block) >= before + block  # its own mapping
        with heap_during_pass():
            assert _mapped_bytes_holding(block) < before + block  # from the heap
        # After the pass the freed block stays in the heap (and serves its size again);
        # a larger one gets its own mapping as before.
        larger = int(_mallinfo().fordblks) + (64 << 20)
        assert _mapped_bytes_holding(larger) >= before + larger
    finally:
        assert set_policy_for_passes(1 << 20) == "reuse"
        assert return_freed_memory() is True  # the CLI's default again


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_memory_a_pass_kept_is_given_back_between_passes():
    from circuitscope.allocator import (
        heap_during_pass,
        release_pass_memory,
        set_policy_for_passes,
    )

    block = 64 << 20
    try:
        assert set_policy_for_passes(32 * 512 * 576 * 4) == "heap passes"
        with heap_during_pass():
            torch.ones(block, dtype=torch.uint8)  # made, touched and freed in the pass
        kept = _resident_bytes()
        release_pass_memory()
        assert _resident_bytes() < kept - block // 2
    finally:
        assert set_policy_for_passes(1 << 20) == "reuse"
        assert return_freed_memory() is True
