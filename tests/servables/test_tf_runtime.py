"""tf_runtime.start: TensorFlow imported, and its objects out of the collector's reach."""

from __future__ import annotations

import gc

from tfaas.servables import tf_runtime


def test_start_freezes_tensorflows_objects_so_full_collections_skip_them() -> None:
    try:
        tf_runtime.start(0, 0)
        assert gc.get_freeze_count() > 100_000, "TensorFlow's import leaves hundreds of thousands of objects"
    finally:
        gc.unfreeze()  # NOTE: give the test process its collector back
