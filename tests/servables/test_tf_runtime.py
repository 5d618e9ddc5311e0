"""tf_runtime: TensorFlow imported, its objects out of the collector's reach, and custom op libraries loaded."""

from __future__ import annotations

import gc

import pytest

from tfaas.servables import tf_runtime


def test_start_freezes_tensorflows_objects_so_full_collections_skip_them() -> None:
    try:
        tf_runtime.start(0, 0, 1)
        assert gc.get_freeze_count() > 100_000, "TensorFlow's import leaves hundreds of thousands of objects"
    finally:
        gc.unfreeze()  # NOTE: give the test process its collector back


def test_pools_default_to_the_workers_share_of_the_cores(monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert [tf_runtime.pool_size(0, workers) for workers in (1, 2, 8, 16)] == [8, 4, 1, 1]
    assert tf_runtime.pool_size(3, 8) == 3, "a setting wins"


def test_an_op_library_tensorflow_refuses_is_an_error_naming_it(tmp_path) -> None:
    library = tmp_path / "broken.so"
    library.write_text("not a shared library\n")
    with pytest.raises(RuntimeError, match=f"custom_op_paths: cannot load the op library {library}: .*broken.so"):
        tf_runtime.load_op_libraries([str(library)])
