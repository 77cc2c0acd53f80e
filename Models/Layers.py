"""Neural network layers on ``tf.compat.v1.get_variable`` and ``tf.nn`` (no Keras).

Every layer with parameters opens its own variable scope ``name`` and creates
``kernel`` (Glorot-uniform initialised) and, if used, ``bias`` (zeros): the defaults of
the old ``tf.layers`` that the reference code was trained with. Tensors are NHWC:
``[batch, freq, frames, channels]``; the batch dimension may be unknown (``None``).

Mixed precision: a layer computes in the dtype of its input (float32, bfloat16 or float16).
Its variables are always float32 and are cast to that dtype where they are used, so the
optimisers update float32 weights with float32 gradients (the gradient of a cast is cast
back). The networks choose the dtype by casting their input once (Models/Unet.py,
Models/WGAN_Critic.py; Precision.py says when).
"""

from typing import Callable, Optional, Sequence, Union

import tensorflow as tf

IntPair = Union[int, Sequence[int]]
Activation = Optional[Callable[[tf.Tensor], tf.Tensor]]
# A get_variable initializer: called with (shape, dtype=..., partition_info=...), returns the values.
Initializer = Callable[..., tf.Tensor]
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


def _pair(value: IntPair) -> tuple:
    """``3 -> (3, 3)``; ``(4, 2) -> (4, 2)``."""
    if isinstance(value, int):
        return (value, value)
    pair = tuple(int(v) for v in value)
    if len(pair) != 2:
        raise ValueError(f"Expected an int or a pair of ints, got {value!r}")
    return pair


def _kernel(shape, initializer=None):
    return tf.compat.v1.get_variable(
        "kernel", shape, dtype=tf.float32, initializer=initializer or tf.compat.v1.glorot_uniform_initializer()
    )


def nonnegative_glorot_uniform() -> Initializer:
    """Initializer of ``|w|`` for ``w`` Glorot-uniform: the same scale, every weight >= 0.

    For a ReLU layer whose inputs are all non-negative (ReLU features, log magnitudes), it
    makes every output start positive, so no output unit can start dead.
    """
    glorot = tf.compat.v1.glorot_uniform_initializer()

    def initializer(shape, dtype=tf.float32, partition_info=None):
        return tf.abs(glorot(shape, dtype=dtype, partition_info=partition_info))

    return initializer


def _bias(size):
    return tf.compat.v1.get_variable("bias", [size], dtype=tf.float32, initializer=tf.compat.v1.zeros_initializer())


def _at_dtype_of(x: tf.Tensor, variable):
    """A float32 ``variable`` in the compute dtype of the layer input ``x`` (cast at use)."""
    if variable is None or variable.dtype.base_dtype == x.dtype.base_dtype:
        return variable
    return tf.cast(variable, x.dtype.base_dtype)


def float_dtype(value: Union[str, tf.DType], what: str) -> tf.DType:
    """A compute dtype given as ``"float32"`` / ``"bfloat16"`` / ``"float16"`` or a tf.DType.

    Raises:
        ValueError: naming ``what`` (e.g. ``"Unet compute_dtype"``) for any other value.
    """
    name = value.name if isinstance(value, tf.DType) else value
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"{what}={value!r}: use one of {', '.join(COMPUTE_DTYPES)}")
    return tf.as_dtype(name)


def cast(x: tf.Tensor, dtype: Union[str, tf.DType]) -> tf.Tensor:
    """``x`` in ``dtype`` (no op if it is already): where a network enters or leaves its compute dtype."""
    dtype = tf.as_dtype(dtype)
    return x if x.dtype.base_dtype == dtype else tf.cast(x, dtype)


def _channels(x: tf.Tensor) -> int:
    channels = x.shape[-1]
    if channels is None:
        raise ValueError(f"Layer input {x.name} needs a static channel dimension, got shape {x.shape}")
    return int(channels)


# Gradient of a 16-bit BiasAdd: TensorFlow's BiasAddGrad kernel for bfloat16 on CPU (Eigen, not
# oneDNN) sums in bfloat16: on zero-mean gradients of a 64 x 346 x 154 x 16 map its result was off
# by up to 66 % of the largest sum, and 7x slower than float32's. tf.reduce_sum sums in float32
# and only rounds the result (0.3 %), in a tenth of that time.
_REDUCE_SUM_BIAS_GRAD = "BiasAddGradByReduceSum"


@tf.RegisterGradient(_REDUCE_SUM_BIAS_GRAD)
def _bias_add_grad_by_reduce_sum(op, grad):
    """BiasAdd's gradient ``(grad, sum of grad over all but the channel axis)`` (NHWC / [B, C])."""
    return grad, tf.reduce_sum(grad, axis=list(range(grad.shape.rank - 1)))


def _bias_add(x, bias):
    """``x + bias`` on the channel axis, in ``x``'s dtype (16-bit: with the reduce_sum gradient)."""
    bias = _at_dtype_of(x, bias)
    if x.dtype.base_dtype == tf.float32:
        return tf.nn.bias_add(x, bias)
    with tf.compat.v1.get_default_graph().gradient_override_map({"BiasAdd": _REDUCE_SUM_BIAS_GRAD}):
        return tf.nn.bias_add(x, bias)


def _finish(x, bias, activation):
    if bias is not None:
        x = _bias_add(x, bias)
    return activation(x) if activation is not None else x


def leaky_relu(x: tf.Tensor, alpha: float = 0.2) -> tf.Tensor:
    """Leaky ReLU ``max(alpha * x, x)`` with slope ``0 < alpha < 1`` for negative inputs."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"leaky_relu: alpha must be in (0, 1), got {alpha}")
    # Not tf.nn.leaky_relu: with oneDNN on, grappler's remapper fails on BiasAdd+LeakyRelu
    # whose gradient is also in the graph and then skips all fusions of that graph.
    return tf.maximum(alpha * x, x)


def conv2d(
    x: tf.Tensor,
    filters: int,
    kernel_size: IntPair,
    name: str,
    strides: IntPair = 1,
    padding: str = "valid",
    activation: Activation = None,
    use_bias: bool = True,
    kernel_initializer: Optional[Initializer] = None,
) -> tf.Tensor:
    """2-D convolution ``[B, H, W, C_in] -> [B, H', W', filters]``.

    Args:
        padding: ``"valid"`` (``H' = (H - k) // s + 1``) or ``"same"`` (``H' = ceil(H / s)``).
        kernel_initializer: a ``get_variable`` initializer; None for Glorot-uniform.
    """
    kernel_h, kernel_w = _pair(kernel_size)
    with tf.compat.v1.variable_scope(name):
        kernel = _kernel([kernel_h, kernel_w, _channels(x), filters], kernel_initializer)
        bias = _bias(filters) if use_bias else None
        y = tf.nn.conv2d(x, _at_dtype_of(x, kernel), strides=(1,) + _pair(strides) + (1,), padding=padding.upper())
        return _finish(y, bias, activation)


def conv2d_transpose(
    x: tf.Tensor,
    filters: int,
    kernel_size: IntPair,
    strides: IntPair,
    name: str,
    activation: Activation = None,
    use_bias: bool = True,
) -> tf.Tensor:
    """Transposed ("up-") convolution with valid padding ``[B, H, W, C] -> [B, H', W', filters]``.

    ``H' = (H - 1) * s + k``; for kernel 2 and stride 2 this doubles each side.
    """
    kernel_h, kernel_w = _pair(kernel_size)
    stride_h, stride_w = _pair(strides)
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None:
        raise ValueError(f"conv2d_transpose {name}: needs static spatial sizes, got {x.shape}")
    out_h, out_w = (int(height) - 1) * stride_h + kernel_h, (int(width) - 1) * stride_w + kernel_w
    with tf.compat.v1.variable_scope(name):
        # Transposed kernels are stored as [h, w, out_channels, in_channels].
        kernel = _kernel([kernel_h, kernel_w, filters, _channels(x)])
        bias = _bias(filters) if use_bias else None
        batch = x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]
        output_shape = tf.stack([batch, out_h, out_w, filters])
        y = tf.nn.conv2d_transpose(
            x, _at_dtype_of(x, kernel), output_shape, strides=(1, stride_h, stride_w, 1), padding="VALID"
        )
        y.set_shape([x.shape[0], out_h, out_w, filters])
        return _finish(y, bias, activation)


def max_pool(x: tf.Tensor, pool_size: IntPair = 2, strides: IntPair = 2) -> tf.Tensor:
    """Max-pooling with valid padding ``[B, H, W, C] -> [B, (H - p) // s + 1, ..., C]``."""
    return tf.nn.max_pool2d(x, ksize=_pair(pool_size), strides=_pair(strides), padding="VALID")


def flatten(x: tf.Tensor) -> tf.Tensor:
    """``[B, d1, d2, ...] -> [B, d1 * d2 * ...]``; all but the batch dimension must be static."""
    dims = x.shape.as_list()[1:]
    if any(d is None for d in dims):
        raise ValueError(f"flatten: {x.name} needs static non-batch dimensions, got {x.shape}")
    size = 1
    for d in dims:
        size *= d
    return tf.reshape(x, [-1, size])


def dense(x: tf.Tensor, units: int, name: str, activation: Activation = None, use_bias: bool = True) -> tf.Tensor:
    """Fully connected layer ``[B, D] -> [B, units]``."""
    with tf.compat.v1.variable_scope(name):
        kernel = _kernel([_channels(x), units])
        bias = _bias(units) if use_bias else None
        return _finish(tf.matmul(x, _at_dtype_of(x, kernel)), bias, activation)


def crop(x: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """Centre crop ``[B, H, W, C] -> [B, height, width, C]``.

    When ``H - height`` is odd the extra row is dropped at the end (offset rounds down).
    """
    in_h, in_w = int(x.shape[1]), int(x.shape[2])
    if height > in_h or width > in_w:
        raise ValueError(f"crop: cannot crop {x.name} of size {in_h}x{in_w} to a larger {height}x{width}")
    top, left = (in_h - height) // 2, (in_w - width) // 2
    return tf.slice(x, [0, top, left, 0], [-1, height, width, -1])


def crop_and_concat(skip: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """Centre-crop ``skip`` to the spatial size of ``x`` and concatenate on channels.

    Returns:
        ``[B, H_x, W_x, C_skip + C_x]`` (the cropped ``skip`` channels come first).
    """
    cropped = crop(skip, int(x.shape[1]), int(x.shape[2]))
    return tf.concat([cropped, x], axis=3)
