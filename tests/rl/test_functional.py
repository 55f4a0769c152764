"""rl.functional details not covered by the torch reference: scalar operands' dtype, activation-name defaults."""

import numpy as np
import pytest

from rl import backend
from rl import functional as F
from rl import layers as L
from rl.tensor import Tensor


def _np(t):
    return backend.to_numpy(t.data)


def test_relu_cap_and_slope_are_exact_in_float64(device):
    # Python floats next to a float64 tensor used to become float32 tensors: the cap was 2.3280000687.
    x = Tensor(device.asarray([5.0, -1.0, 1.0, 2.328], dtype=np.float64))
    y = L.ReLU(max_value=2.328, negative_slope=0.1, dtype="float64")(x)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(_np(y), [2.328, -0.1, 1.0, 2.328])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_python_scalars_take_the_other_operands_dtype(device, dtype):
    x = Tensor(device.asarray([0.1, 0.7, -3.0], dtype=dtype), requires_grad=True)
    s = 0.3  # not exactly representable: a float32 rounding would show in float64
    for out in (F.maximum(x, s), F.maximum(s, x), F.minimum(x, s), F.minimum(s, x),
                F.where(_np(x) > 0.5, x, s), F.where(_np(x) > 0.5, s, x)):
        assert out.dtype == np.dtype(dtype)
        assert np.dtype(dtype).type(s) in _np(out)  # the number itself in that dtype, not a float32 rounding
    # Gradient still goes only to the tensor side.
    F.maximum(x, s).sum().backward()
    np.testing.assert_array_equal(_np(Tensor(x.grad)), [0.0, 1.0, 0.0])
    # Two Python numbers: float32, as Tensor(number) is.
    assert F.maximum(1.0, 2.5).dtype == np.float32
    # An int tensor next to a float number becomes float (NumPy's promotion), not a truncated int.
    ints = Tensor(device.asarray([1, 3], dtype=np.int64))
    np.testing.assert_array_equal(_np(F.minimum(ints, 2.5)), [1.0, 2.5])


def test_leaky_relu_activation_string_has_keras_function_slope(device):
    # keras.activations.leaky_relu defaults to negative_slope=0.2 (the LeakyReLU layer to 0.3).
    x = Tensor(device.asarray([-2.0, 0.0, 3.0]))
    np.testing.assert_allclose(_np(F.get_activation("leaky_relu")(x)), [-0.4, 0.0, 3.0], rtol=1e-6)
    dense = L.Dense(1, activation="leaky_relu", use_bias=False, kernel_initializer="ones", input_shape=(1,))
    np.testing.assert_allclose(_np(dense(Tensor(device.asarray([[-5.0]])))), [[-1.0]], rtol=1e-6)


def test_batch_norm_op_on_an_empty_training_batch_keeps_moving_statistics(device):
    # The op itself (not only the layer) used to write NaN into the moving statistics for good.
    x = Tensor(device.zeros((0, 3, 3, 2)), requires_grad=True)
    gamma = Tensor(device.ones(2), requires_grad=True)
    mean, var = device.asarray([0.5, -1.0]), device.asarray([2.0, 3.0])
    out = F.batch_norm(x, gamma, None, mean, var, training=True, momentum=0.9)
    out.sum().backward()
    assert out.shape == (0, 3, 3, 2) and x.grad.shape == (0, 3, 3, 2)
    np.testing.assert_array_equal(backend.to_numpy(mean), [0.5, -1.0])
    np.testing.assert_array_equal(backend.to_numpy(var), [2.0, 3.0])
    np.testing.assert_array_equal(backend.to_numpy(gamma.grad), [0.0, 0.0])
