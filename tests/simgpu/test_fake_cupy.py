"""The simulated CuPy is strict where CuPy is: if it quietly behaved like NumPy, the simulated GPU
run would pass code that fails on a real GPU. Runs in every suite run (with or without
``PLAYGRAD_SIMULATED_GPU``), on its own copy of the module when the simulation is off."""

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

from rl import backend

_FAKE = pathlib.Path(__file__).with_name("fake_cupy.py")


def _load() -> object:
    active = sys.modules.get("cupy")
    if active is not None and getattr(active, "__version__", "").endswith("+simulated"):
        return active
    name = "_simulated_cupy_under_test"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _FAKE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # the module finds itself through sys.modules
        spec.loader.exec_module(module)
    return sys.modules[name]


cp = _load()
IMPLICIT = "Implicit conversion to a NumPy array is not allowed"


def test_device_arrays_are_not_numpy_arrays_and_leave_only_through_get():
    dev = cp.arange(4, dtype=cp.float32)
    assert not isinstance(dev, np.ndarray)
    with pytest.raises(TypeError, match=IMPLICIT):
        np.asarray(dev)
    with pytest.raises(TypeError, match=IMPLICIT):
        np.array([dev[0], dev[1]])
    with pytest.raises(TypeError, match=IMPLICIT):
        np.float32(dev[0])
    host = dev.get()
    assert isinstance(host, np.ndarray) and host.tolist() == [0.0, 1.0, 2.0, 3.0]
    host[0] = 9.0  # a copy, not a view of device memory
    assert float(dev[0]) == 0.0
    assert isinstance(cp.asnumpy(dev), np.ndarray)


def test_host_data_is_copied_onto_the_device():
    host = np.zeros(3, np.float32)
    dev = cp.asarray(host)
    host[0] = 5.0
    assert float(dev[0]) == 0.0
    assert cp.asarray([dev[0], dev[1]]).shape == (2,)  # a list of device arrays is fine
    with pytest.raises(TypeError, match=IMPLICIT):
        cp.asarray([dev[0], 1.0])  # mixed with host numbers it is not


def test_host_arrays_do_not_mix_with_device_arrays():
    dev = cp.ones(3, dtype=cp.float32)
    for mix in (lambda: dev + np.ones(3), lambda: np.ones(3) * dev, lambda: cp.maximum(dev, np.zeros(3)),
                lambda: cp.where(dev > 0, np.ones(3), 0.0), lambda: cp.concatenate([dev, np.ones(1)]),
                lambda: cp.exp(np.ones(2)), lambda: cp.maximum(dev, [1.0, 2.0, 3.0])):
        with pytest.raises(TypeError, match="Unsupported type"):
            mix()
    out = dev * np.float32(2) + 1  # Python and NumPy scalars are fine
    assert isinstance(out, cp.ndarray) and out.tolist() == [3.0, 3.0, 3.0]
    clipped = np.clip(dev, 0, 0.5)  # NumPy functions dispatch to the device
    assert isinstance(clipped, cp.ndarray) and clipped.tolist() == [0.5, 0.5, 0.5]
    assert isinstance(np.exp(dev), cp.ndarray)


def test_reductions_and_scalar_indexing_give_0d_device_arrays_without_index():
    dev = cp.arange(5)
    total = dev.sum()
    assert isinstance(total, cp.ndarray) and total.ndim == 0
    assert int(total) == 10 and float(dev.max()) == 4.0 and bool(dev[1] == 1) and f"{total:d}" == "10"
    with pytest.raises(TypeError):
        range(dev[2])  # no __index__
    with pytest.raises(TypeError):
        [1, 2, 3][dev[0]]
    with pytest.raises(TypeError):
        cp.zeros(dev[2])
    with pytest.raises(TypeError):
        round(dev.mean())  # no __round__
    with pytest.raises(TypeError):
        len(total)
    view = dev[1]  # CuPy's scalar index is a view, not a copy
    view += 10
    assert int(dev[1]) == 11


def test_assignment_from_host_arrays_follows_cupy():
    dev = cp.zeros(4, dtype=cp.float32)
    dev[np.array([0, 2])] = np.array([1.0, 2.0])  # advanced indexing copies host values over
    assert dev.tolist() == [1.0, 0.0, 2.0, 0.0]
    with pytest.raises(ValueError, match="cannot be used for fill"):
        dev[1:3] = np.array([5.0, 6.0])  # basic indexing fills, which takes scalars only
    dev[1:3] = 7.0
    assert dev.tolist() == [1.0, 7.0, 7.0, 0.0]


def test_ufunc_at_only_where_cupy_has_a_scatter_kernel():
    grad = cp.zeros(3, dtype=cp.float32)
    cp.add.at(grad, cp.asarray([0, 0, 2]), cp.ones(3, dtype=cp.float32))
    assert grad.tolist() == [2.0, 0.0, 1.0]
    np.add.at(grad, cp.asarray([1]), 1.0)  # NumPy's ufunc.at dispatches to the device too
    assert grad.tolist() == [2.0, 1.0, 1.0]
    with pytest.raises(TypeError, match="only supports"):
        cp.add.at(cp.zeros(3, dtype=cp.int64), cp.asarray([0]), 1)
    with pytest.raises(NotImplementedError):
        cp.multiply.at(grad, cp.asarray([0]), 2.0)
    with pytest.raises(TypeError):
        cp.add(grad, 1.0, where=grad > 0)  # CuPy ufuncs take out, dtype and casting only


def test_only_cupys_api():
    dev = cp.zeros((2, 2))
    assert not hasattr(dev.flags, "writeable") and not hasattr(dev, "setflags") and not hasattr(dev, "ctypes")
    with pytest.raises(TypeError):
        cp.indices((2, 3), sparse=True)
    with pytest.raises(TypeError):
        dev.max(initial=0)
    with pytest.raises(AttributeError, match="simulated CuPy"):
        cp.busday_count  # noqa: B018 - a NumPy name CuPy lacks (no datetime dtypes)
    rng = cp.random.default_rng(np.random.SeedSequence(0))
    assert rng.random((2,), dtype=np.float32).dtype == np.float32
    assert isinstance(rng.integers(0, 5, size=()), cp.ndarray)
    assert isinstance(rng.standard_normal((3,)), cp.ndarray) and isinstance(rng.uniform(size=2), cp.ndarray)
    for missing in ("normal", "choice", "permutation", "shuffle", "spawn"):
        assert not hasattr(rng, missing), missing
    same_seed = np.random.default_rng(np.random.SeedSequence(0)).random(4)
    assert rng.random(4).tolist() != same_seed.tolist()  # its own stream, as XORWOW is


def test_device_identity_says_it_is_simulated():
    assert cp.is_available()
    name = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)["name"]
    assert isinstance(name, bytes) and b"simulated" in name
    assert cp.__version__.endswith("+simulated")


@pytest.mark.skipif(not backend.gpu_status()[1].startswith("CuPy") or "simulated" not in backend.gpu_status()[1],
                    reason="PLAYGRAD_SIMULATED_GPU=1 is not set")
def test_backend_sees_the_simulated_gpu_and_arrays_pickle_as_device_arrays():
    import pickle

    assert "simulated CuPy (NumPy-backed)" in backend.gpu_status()[1]
    dev = cp.arange(3)
    again = pickle.loads(pickle.dumps(dev))
    assert isinstance(again, cp.ndarray) and again.tolist() == [0, 1, 2]
