"""The built-in handlers, one per Keras layer class (or family of classes)."""

from __future__ import annotations

from typing import Any, Optional

from rfa_toolbox.errors import shown
from rfa_toolbox.ops import UPSAMPLE_MODES

from .ir import DEFAULT_HANDLERS, Handler, KerasFormatError, KOp, KTensor, handles

PADDINGS = ("valid", "same", "causal", "full")
DATA_FORMATS = ("channels_last", "channels_first", None)


def _tuple(value: Any, ndim: int) -> list[Any]:
    """An int or one int per axis, as a list of ``ndim`` ints (Keras writes integers only)."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * ndim
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise KerasFormatError(f"sizes must be integers, got {shown(value)}")
    return values


def _channels(t: KTensor, config: dict[str, Any]) -> Optional[int]:
    if config.get("data_format") not in DATA_FORMATS:
        raise KerasFormatError(f"unknown data_format {shown(config.get('data_format'))}")
    if "padding" in config and config["padding"] not in PADDINGS:
        raise KerasFormatError(f"unknown padding {shown(config['padding'])} (one of {', '.join(PADDINGS)})")
    if not t.shape:
        return None
    return t.shape[0] if config.get("data_format") == "channels_first" else t.shape[-1]


@handles("Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Convolution2D", "Convolution3D",
          "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
          "SeparableConvolution1D", "SeparableConvolution2D", "Conv1DTranspose", "Conv2DTranspose",
          "Conv3DTranspose", "Convolution2DTranspose", "Convolution3DTranspose")
def _conv(config: dict[str, Any], inputs: list[KTensor], ndim: int) -> KOp:
    kernel = _tuple(config["kernel_size"], ndim)
    in_ch = _channels(inputs[0], config)
    depthwise = "Depthwise" in config.get("__class__", "")
    out_ch = config.get("filters") or (in_ch * config.get("depth_multiplier", 1) if in_ch else None)
    groups = in_ch if depthwise else config.get("groups", 1)
    params = None
    if in_ch and out_ch:
        k = 1
        for v in kernel:
            k *= v
        params = k * out_ch * (in_ch // (groups or 1)) + (out_ch if config.get("use_bias", True) else 0)
    op = "conv_transpose" if "Transpose" in config.get("__class__", "") else "conv"
    dilation = _tuple(config.get("dilation_rate", 1), ndim)
    return KOp(op, dict(kernel=kernel, stride=_tuple(config.get("strides", 1), ndim), dilation=dilation,
                        in_channels=in_ch, out_channels=out_ch, groups=groups, params=params,
                        **_padding(config, kernel, dilation)))


def _padding(config: dict[str, Any], kernel: list[int], dilation: list[int]) -> dict[str, Any]:
    """A window layer's padding: "same" is resolved from the input size at analysis time (its
    before side is total // 2, as TensorFlow pads); "causal" pads d(k-1) before."""
    mode = config.get("padding", "valid")
    if mode == "same":
        return {"meta": {"same": True}}
    if mode == "causal":
        return {"padding": [[d * (k - 1), 0] for k, d in zip(kernel, dilation)]}
    return {}


@handles("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "MaxPool1D", "MaxPool2D", "MaxPool3D",
          "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "AvgPool1D", "AvgPool2D",
          "AvgPool3D")
def _pool(config: dict[str, Any], inputs: list[KTensor], ndim: int) -> KOp:
    _channels(inputs[0], config)  # checks padding and data_format
    size = _tuple(config.get("pool_size", 2), ndim)
    strides = config.get("strides")
    op = "max_pool" if config["__class__"].startswith("Max") else "avg_pool"
    return KOp(op, dict(kernel=size, stride=_tuple(strides, ndim) if strides else size,
                        **_padding(config, size, [1] * ndim)))


@handles("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
          "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GlobalAvgPool1D",
          "GlobalAvgPool2D", "GlobalAvgPool3D", "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D")
def _global_pool(config: dict[str, Any], inputs: list[KTensor], ndim: int) -> KOp:
    kind = "max" if "Max" in config["__class__"] else "avg"
    return KOp(f"global_{kind}_pool", {}, spatial=bool(config.get("keepdims")))


@handles("UpSampling1D", "UpSampling2D", "UpSampling3D")
def _upsample(config: dict[str, Any], inputs: list[KTensor], ndim: int) -> KOp:
    mode = config.get("interpolation", "nearest")
    if mode not in UPSAMPLE_MODES:  # lanczos, gaussian, mitchellcubic: wide kernels
        mode = "bicubic"
    return KOp("upsample", dict(factor=_tuple(config.get("size", 2), ndim), mode=mode))


@handles("Dense", "EinsumDense")
def _dense(config: dict[str, Any], inputs: list[KTensor], ndim: int) -> KOp:
    """Pointwise on a tensor that still has its spatial axes; global after Flatten."""
    in_ch = inputs[0].shape[-1] if inputs[0].shape else None
    units = config.get("units")
    params = in_ch * units + (units if config.get("use_bias", True) else 0) if in_ch and units else None
    meta = dict(in_channels=in_ch, out_channels=units, params=params)
    if inputs[0].spatial:
        return KOp("dense", dict(transfer="neutral", computes=True, **meta))
    return KOp("dense", meta, spatial=False)


@handles("Flatten")
def _flatten(config: dict[str, Any], inputs: list[KTensor], ndim: int) -> KOp:
    return KOp("flatten", {}, spatial=False) if inputs[0].spatial else KOp("identity", {}, spatial=False)


@handles("Reshape")
def _reshape(config: dict[str, Any], inputs: list[KTensor], ndim: int) -> KOp:
    """Neutral when the spatial sizes survive (or there are none); else the axes collapse."""
    t = inputs[0]
    target = tuple(config.get("target_shape") or ())
    if not t.spatial:
        return KOp("identity", {}, spatial=False)
    if t.shape and len(target) == len(t.shape) and tuple(target[:ndim]) == tuple(t.shape[:ndim]):
        return KOp("identity", {})
    return KOp("flatten", {}, spatial=False)


@handles("Attention", "MultiHeadAttention", "AdditiveAttention", "GroupQueryAttention")
def _attention(config: dict[str, Any], inputs: list[KTensor], ndim: int) -> KOp:
    return KOp("attention", {}, spatial=inputs[0].spatial)


_MERGES = {"Add": "add", "Multiply": "mul", "Subtract": "sub", "Average": "merge", "Maximum": "merge",
           "Minimum": "merge", "Concatenate": "concat", "Dot": "merge",
           "CustomScaleLayer": "add"}  # keras.applications' InceptionResNetV2: x + scale * r


def _merge(config: dict[str, Any], inputs: list[KTensor], ndim: int) -> KOp:
    return KOp(_MERGES[config["__class__"]], {}, spatial=any(t.spatial for t in inputs))


handles(*_MERGES)(_merge)

_NEUTRAL = {
    "norm": "BatchNormalization LayerNormalization GroupNormalization UnitNormalization "
            "Normalization SyncBatchNormalization RMSNormalization",
    "activation": "Activation ReLU LeakyReLU PReLU ELU Softmax ThresholdedReLU",
    "dropout": "Dropout SpatialDropout1D SpatialDropout2D SpatialDropout3D GaussianNoise "
               "GaussianDropout AlphaDropout ActivityRegularization StochasticDepth",
    "neutral": "LayerScale",
    "identity": "Rescaling Identity Masking",
}


@handles("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D")
def _pad(config: dict[str, Any], inputs: list[KTensor], ndim: int) -> KOp:
    """Zero padding moves the positions by its before side; cropping by minus its before side."""
    crop = config["__class__"].startswith("Crop")
    value = config.get("cropping" if crop else "padding", 1)
    values = list(value) if isinstance(value, (list, tuple)) else [value] * ndim
    if len(values) != ndim:
        raise KerasFormatError(f"padding {shown(value)} needs {ndim} entries")
    pairs = []
    for v in values:
        pair = _tuple(v, 2)
        pairs.append([-pair[0], -pair[1]] if crop else pair)
    return KOp("pad", {"padding": pairs}, spatial=inputs[0].spatial)


def _neutral_handler(op: str) -> Handler:
    def handler(config: dict[str, Any], inputs: list[KTensor], ndim: int) -> KOp:
        return KOp(op, {}, spatial=inputs[0].spatial)
    return handler


for _op, _names in _NEUTRAL.items():
    for _name in _names.split():
        DEFAULT_HANDLERS[_name] = _neutral_handler(_op)
