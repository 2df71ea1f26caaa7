"""Make freed tensor memory go back to the system at once (glibc on Linux).

glibc serves allocations below a threshold from its heap and keeps freed heap
memory for reuse; the threshold also rises on its own, up to 32 MB, as large
blocks are freed. A long attribution frees many such blocks (per-layer caches,
encoded activations) and the process keeps them: on a 1024-token prompt about
1.2 GB of resident memory that nothing uses. A fixed threshold of 1 MB serves
every larger block with its own mapping, returned to the system when freed.

Fresh mappings cost page faults, though, and repeated passes over same-sized
tensors pay them every time: training (`reuse_freed_memory`) and attribution
of short prompts (`set_policy_for_passes`) keep such blocks in the heap instead.
Long prompts' blocks are larger than any the heap will keep; there the policy
serves every allocation of a backward pass from the heap (`heap_during_pass`),
and the rest of the run keeps its own mappings.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Literal, get_args

_M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
_THRESHOLD_BYTES = 1 << 20


def return_freed_memory() -> bool:
    """Serve allocations over 1 MB by their own mappings; False where not glibc/Linux."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


_M_TRIM_THRESHOLD = -1
LARGEST_HEAP_BLOCK = 32 << 20  # glibc's largest mmap threshold on 64-bit
_TRAINING_TRIM_BYTES = 1 << 30


def reuse_freed_memory() -> bool:
    """Training, short attributions: keep freed blocks below 32 MB in the heap for reuse.

    A training step frees and allocates the same large blocks every time (gradients,
    pre-activations: 9 MB each per layer at 4096 x 576); with `return_freed_memory`'s
    1 MB threshold each comes back as fresh pages, zeroed by page faults every step
    (a 30 x 4096 TopK step on one CPU thread: ~1.45 s -> ~2.0 s). Blocks up to 32 MB
    come from the heap, and up to 1 GB of free heap is kept rather than trimmed.
    False where not glibc/Linux.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, LARGEST_HEAP_BLOCK)
        return bool(ok and libc.mallopt(_M_TRIM_THRESHOLD, _TRAINING_TRIM_BYTES))
    except (OSError, AttributeError):
        return False


HEAP_PASS_LIMIT = 64 << 20
"""The largest gradient for which each backward pass runs on the heap (`heap_during_pass`):
1,024 tokens at batch 32 (75 MB) are over it."""


HeapPasses = Literal["auto", "always", "never"]
"""Whether backward passes with gradients past the heap's largest block run on the heap:
"auto" up to `HEAP_PASS_LIMIT`, "always", or "never" (see `policy_for_passes`)."""


def policy_for_passes(pass_bytes: int, heap_passes: HeapPasses = "auto") -> str:
    """ "reuse", "heap passes" or "return": the policy for repeated passes whose
    largest tensors (attribution's gradients, [batch, seq, d_model] each) take
    `pass_bytes`.

    Up to glibc's largest heap block the heap can serve them again every pass;
    with `return_freed_memory` each comes back as fresh pages zeroed by page
    faults (a 32-token trace on 2 CPU threads: 16 s of system time, 20.6 s ->
    13.1 s with reuse, for ~0.35 GB more resident memory). Larger tensors would
    get their own mappings under "reuse" too, so "heap passes" returns memory at
    once except inside each backward pass (`heap_during_pass`), whose blocks are
    kept in the heap for the next pass: at 512 tokens (38 MB) 255 s -> 198 s for
    0.15 GB more. Past `HEAP_PASS_LIMIT` the kept blocks and the heap's holes cost
    more than that: at 1,024 tokens the peak rose from 7.8 to 8.5 GiB, over the
    8 GiB such a trace is held to, so "return" keeps every large block mapped apart.

    heap_passes: "always" runs passes past the limit on the heap too (1,024 tokens:
    21.5 -> 16 min; with a row buffer of 1,536 MB the peak was 7.8 GiB), "never" none
    (every block past the heap's largest returned at once)."""
    if heap_passes not in get_args(HeapPasses):
        raise ValueError(f"heap_passes must be one of {get_args(HeapPasses)}, got {heap_passes!r}")
    if pass_bytes <= LARGEST_HEAP_BLOCK:
        return "reuse"
    if heap_passes == "never":
        return "return"
    if heap_passes == "always" or pass_bytes <= HEAP_PASS_LIMIT:
        return "heap passes"
    return "return"


_M_MMAP_MAX = -4
_MMAP_MAX_DEFAULT = 65536  # glibc's own default
_PASS_TRIM_BYTES = 2 << 30
_heap_passes = False


def set_policy_for_passes(pass_bytes: int, heap_passes: HeapPasses = "auto") -> str:
    """Apply `policy_for_passes`; returns the policy (applied only on glibc/Linux)."""
    global _heap_passes
    policy = policy_for_passes(pass_bytes, heap_passes)
    _heap_passes = False
    if policy == "reuse":
        reuse_freed_memory()
    elif policy == "return":
        return_freed_memory()
    else:
        _heap_passes = return_freed_memory() and _mallopt(_M_TRIM_THRESHOLD, _PASS_TRIM_BYTES)
    return policy


@contextmanager
def heap_during_pass() -> Iterator[None]:
    """Under the "heap passes" policy, serve every allocation inside from the heap.

    A backward pass over a long prompt allocates and frees dozens of gradients larger
    than the heap's largest block; each would come as a fresh mapping, zeroed page by
    page (at 512 tokens, batch 32, 2 CPU threads: a third of the pass). Inside, glibc
    maps nothing: the blocks come from the heap, and freed, stay there (up to 2 GB
    untrimmed) for the next pass. Outside, the run returns memory at once as before.
    Does nothing under the other policies or off glibc."""
    if not _heap_passes:
        yield
        return
    _mallopt(_M_MMAP_MAX, 0)
    try:
        yield
    finally:
        _mallopt(_M_MMAP_MAX, _MMAP_MAX_DEFAULT)


def release_pass_memory() -> None:
    """Under the "heap passes" policy, give back the heap memory the passes kept.

    For the steps between passes that need memory of their own (restricting the row
    buffer, column passes, assembling the graph): without it they would add to the
    blocks kept for the next pass. The next pass takes them again, faulting once.
    Does nothing under the other policies or off glibc."""
    if _heap_passes:
        with suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def _mallopt(parameter: int, value: int) -> bool:
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(parameter, value))
    except (OSError, AttributeError):
        return False
