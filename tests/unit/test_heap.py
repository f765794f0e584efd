"""freeze_startup_heap: what is alive at start-up leaves the collector's generations."""

import gc

from tickwire.heap import freeze_startup_heap


def test_freeze_startup_heap_given_live_objects_moves_them_to_the_permanent_generation() -> None:
    """Test that later full collections no longer walk the objects alive when the process started."""
    gc.unfreeze()
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > 1000  # pytest, hypothesis and tickwire's modules at least
        assert sum(gc.get_count()) < gc.get_freeze_count()
    finally:
        gc.unfreeze()
