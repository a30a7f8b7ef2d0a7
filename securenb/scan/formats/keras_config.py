"""Keras model configurations (``.keras`` config.json, HDF5 ``model_config``, SavedModel
``keras_metadata.pb``): the layers a load instantiates, searched at every nesting level.

Code rides in configs three ways: ``Lambda`` layers (marshalled bytecode, run on load by
older Keras and with ``safe_mode=False``), ``module``/``class_name`` pairs that Keras 3
imports and calls (CVE-2025-1550: any module, any function), and ``TFOpLambda`` layers
that call a TensorFlow function by name (``io.write_file``). Only Keras' own layer,
model, optimizer, loss, metric, initializer, regularizer, constraint and activation
modules may be imported; Lambda-like layers are always reported, however deeply nested
(wrappers, nested models, compile configs).
"""

from __future__ import annotations

import json
from typing import Any

from securenb.scan.context import Ctx

_KERAS_PACKAGES = (
    "keras",
    "keras.src",
    "tf_keras",
    "tf_keras.src",
    "tensorflow.keras",
    "tensorflow.python.keras",
)
_SAFE_SUBMODULES = (
    "layers",
    "models",
    "engine",
    "optimizers",
    "backend.torch.optimizers",  # where the torch backend's optimizers are saved from
    "losses",
    "metrics",
    "initializers",
    "regularizers",
    "constraints",
    "activations",
    "dtype_policies",
    "mixed_precision",
)
_FUNCTION_SUBMODULES = (
    "activations",
    "losses",
    "metrics",
    "initializers",
    "regularizers",
    "constraints",
)
_ROOT_CLASSES = frozenset(
    {
        "Sequential",
        "Functional",
        "Model",
        "DTypePolicy",
        "FloatDTypePolicy",
        "QuantizedDTypePolicy",
        "QuantizedFloat8DTypePolicy",
        "InputLayer",
        "Input",
    }
)
_CODE_LAYERS = frozenset({"Lambda", "__lambda__", "TFSMLayer"})
_OP_LAYERS = frozenset({"TFOpLambda", "SlicingOpLambda"})
_OP_NAMESPACES = (
    "math.",
    "nn.",
    "__operators__.",
    "linalg.",
    "signal.",
    "bitwise.",
    "image.",
    "random.",
    "sparse.",
    "ragged.",
    "compat.v1.nn.",
    "compat.v1.math.",
)
_OP_NAMES = frozenset(
    [
        "reshape",
        "concat",
        "stack",
        "unstack",
        "expand_dims",
        "squeeze",
        "transpose",
        "cast",
        "shape",
        "gather",
        "gather_nd",
        "where",
        "split",
        "tile",
        "pad",
        "clip_by_value",
        "identity",
        "zeros_like",
        "ones_like",
        "einsum",
        "matmul",
        "reduce_sum",
        "reduce_mean",
        "reduce_max",
        "reduce_min",
        "reduce_prod",
        "reduce_any",
        "reduce_all",
        "broadcast_to",
        "range",
        "one_hot",
        "boolean_mask",
        "slice",
        "strided_slice",
        "fill",
        "zeros",
        "ones",
        "convert_to_tensor",
        "repeat",
        "roll",
        "reverse",
        "sort",
        "argsort",
        "argmax",
        "argmin",
        "maximum",
        "minimum",
        "abs",
        "sqrt",
        "exp",
        "square",
        "stop_gradient",
        "compat.v1.squeeze",
        "compat.v1.gather",
        "compat.v1.transpose",
    ]
)
MAX_DEPTH = 256


def _module_allowed(module: str, class_name: Any) -> bool:
    if module in _KERAS_PACKAGES:
        return class_name in _ROOT_CLASSES
    submodules = _FUNCTION_SUBMODULES if class_name == "function" else _SAFE_SUBMODULES
    for package in _KERAS_PACKAGES:
        for sub in submodules:
            prefix = f"{package}.{sub}"
            if module == prefix or module.startswith(prefix + "."):
                return True
    return False


def scan_keras_config(config: Any, ctx: Ctx) -> None:
    stack: list[tuple[Any, int]] = [(config, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            ctx.report("keras.malformed", "configuration nested too deeply")
            return
        if isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
            continue
        if not isinstance(node, dict):
            continue
        _check_object(node, ctx)
        stack.extend((value, depth + 1) for value in node.values())


def _check_object(node: dict[str, Any], ctx: Ctx) -> None:
    class_name = node.get("class_name")
    module = node.get("module")
    inner = node.get("config")
    name = inner.get("name") if isinstance(inner, dict) else None
    label = f"{class_name} {name!r}" if name else str(class_name)
    if class_name in _CODE_LAYERS:
        ctx.report(
            "keras.lambda",
            f"{label}: layer carries or loads Python code",
            construct=str(class_name),
        )
    elif class_name in _OP_LAYERS:
        function = inner.get("function") if isinstance(inner, dict) else None
        if not isinstance(function, str) or not (
            function in _OP_NAMES or function.startswith(_OP_NAMESPACES)
        ):
            ctx.report("keras.tf-op", f"{label} calls tf.{function}", construct=f"tf.{function}")
    if isinstance(module, str) and module:
        target = f"{module}.{class_name}" if class_name != "function" else f"{module}.{inner}"
        if not _module_allowed(module, class_name) and not ctx.allowlist.allows(
            module, str(inner if class_name == "function" else class_name)
        ):
            ctx.report(
                "keras.module-not-allowed",
                f"config imports {target}, outside Keras' layer modules",
                construct=target,
            )


def scan_keras_config_bytes(data: bytes, ctx: Ctx) -> None:
    if len(data) > ctx.options.max_header_bytes:
        ctx.report("keras.malformed", f"configuration of {len(data)} bytes exceeds the limit")
        return
    try:
        config = json.loads(data)
    except (ValueError, RecursionError) as exc:
        ctx.report("keras.malformed", f"configuration is not JSON: {exc}")
        return
    scan_keras_config(config, ctx)
