import sys

import pytest

from circuitscope.allocator import return_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_the_mmap_threshold_is_set_on_linux():
    assert return_freed_memory() is True
