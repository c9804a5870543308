"""``op_resolver.h``: a ``tflite::MicroMutableOpResolver<N>`` holding exactly the model's ops.

``AllOpsResolver`` links every kernel TFLM has (tens of KB of flash); a mutable resolver with just
the ops read from the flatbuffer links only those. ``N`` is the number of distinct ops, so the
resolver's registration table is no larger than needed either.
"""

from __future__ import annotations

from device_sim.model_graph import ModelGraph
from firmware_bridge.c_text import header_guard
from firmware_bridge.errors import FirmwareError

# BuiltinOperator name → MicroMutableOpResolver method, checked against tflite-micro's
# tensorflow/lite/micro/micro_mutable_op_resolver.h (2025).
TFLM_ADD_METHODS = {
    "ABS": "AddAbs",
    "ADD": "AddAdd",
    "ADD_N": "AddAddN",
    "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo",
    "CAST": "AddCast",
    "CEIL": "AddCeil",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "COS": "AddCos",
    "CUMSUM": "AddCumSum",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEQUANTIZE": "AddDequantize",
    "DIV": "AddDiv",
    "ELU": "AddElu",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "EQUAL": "AddEqual",
    "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims",
    "FILL": "AddFill",
    "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater",
    "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish",
    "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess",
    "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog",
    "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic",
    "LOG_SOFTMAX": "AddLogSoftmax",
    "MAXIMUM": "AddMaximum",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean",
    "MINIMUM": "AddMinimum",
    "MIRROR_PAD": "AddMirrorPad",
    "MUL": "AddMul",
    "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual",
    "PACK": "AddPack",
    "PAD": "AddPad",
    "PADV2": "AddPadV2",
    "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize",
    "REDUCE_MAX": "AddReduceMax",
    "REDUCE_MIN": "AddReduceMin",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "REVERSE_V2": "AddReverseV2",
    "ROUND": "AddRound",
    "RSQRT": "AddRsqrt",
    "SELECT_V2": "AddSelectV2",
    "SHAPE": "AddShape",
    "SIN": "AddSin",
    "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit",
    "SPLIT_V": "AddSplitV",
    "SQRT": "AddSqrt",
    "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference",
    "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "SUM": "AddSum",
    "SVDF": "AddSvdf",
    "TANH": "AddTanh",
    "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "UNPACK": "AddUnpack",
    "ZEROS_LIKE": "AddZerosLike",
}

# BuiltinOperator name → the TFLM kernel file (tensorflow/lite/micro/kernels/<stem>.cc) that
# defines its Register_ function, read from the tflite-micro tree this project was checked against.
# The exported Makefile compiles these (plus their ``<stem>_common.cc``) and no other kernel.
TFLM_KERNEL_FILES = {
    "RELU": "activations",
    "RELU6": "activations",
    "ADD": "add",
    "ADD_N": "add_n",
    "ARG_MAX": "arg_min_max",
    "ARG_MIN": "arg_min_max",
    "BATCH_MATMUL": "batch_matmul",
    "BATCH_TO_SPACE_ND": "batch_to_space_nd",
    "BROADCAST_ARGS": "broadcast_args",
    "BROADCAST_TO": "broadcast_to",
    "CAST": "cast",
    "CEIL": "ceil",
    "EQUAL": "comparisons",
    "GREATER": "comparisons",
    "GREATER_EQUAL": "comparisons",
    "LESS": "comparisons",
    "LESS_EQUAL": "comparisons",
    "NOT_EQUAL": "comparisons",
    "CONCATENATION": "concatenation",
    "CONV_2D": "conv",
    "CUMSUM": "cumsum",
    "DEPTH_TO_SPACE": "depth_to_space",
    "DEPTHWISE_CONV_2D": "depthwise_conv",
    "DEQUANTIZE": "dequantize",
    "DIV": "div",
    "ABS": "elementwise",
    "COS": "elementwise",
    "LOG": "elementwise",
    "LOGICAL_NOT": "elementwise",
    "RSQRT": "elementwise",
    "SIN": "elementwise",
    "SQRT": "elementwise",
    "SQUARE": "elementwise",
    "ELU": "elu",
    "EMBEDDING_LOOKUP": "embedding_lookup",
    "EXP": "exp",
    "EXPAND_DIMS": "expand_dims",
    "FILL": "fill",
    "FLOOR": "floor",
    "FLOOR_DIV": "floor_div",
    "FLOOR_MOD": "floor_mod",
    "FULLY_CONNECTED": "fully_connected",
    "GATHER": "gather",
    "GATHER_ND": "gather_nd",
    "HARD_SWISH": "hard_swish",
    "L2_POOL_2D": "l2_pool_2d",
    "L2_NORMALIZATION": "l2norm",
    "LEAKY_RELU": "leaky_relu",
    "LOG_SOFTMAX": "log_softmax",
    "LOGICAL_AND": "logical",
    "LOGICAL_OR": "logical",
    "LOGISTIC": "logistic",
    "MAXIMUM": "maximum_minimum",
    "MINIMUM": "maximum_minimum",
    "MIRROR_PAD": "mirror_pad",
    "MUL": "mul",
    "NEG": "neg",
    "PACK": "pack",
    "PAD": "pad",
    "PADV2": "pad",
    "AVERAGE_POOL_2D": "pooling",
    "MAX_POOL_2D": "pooling",
    "PRELU": "prelu",
    "QUANTIZE": "quantize",
    "MEAN": "reduce",
    "REDUCE_MAX": "reduce",
    "REDUCE_MIN": "reduce",
    "SUM": "reduce",
    "RESHAPE": "reshape",
    "RESIZE_BILINEAR": "resize_bilinear",
    "RESIZE_NEAREST_NEIGHBOR": "resize_nearest_neighbor",
    "REVERSE_V2": "reverse",
    "ROUND": "round",
    "SELECT_V2": "select",
    "SHAPE": "shape",
    "SLICE": "slice",
    "SOFTMAX": "softmax",
    "SPACE_TO_BATCH_ND": "space_to_batch_nd",
    "SPACE_TO_DEPTH": "space_to_depth",
    "SPLIT": "split",
    "SPLIT_V": "split_v",
    "SQUARED_DIFFERENCE": "squared_difference",
    "SQUEEZE": "squeeze",
    "STRIDED_SLICE": "strided_slice",
    "SUB": "sub",
    "SVDF": "svdf",
    "TANH": "tanh",
    "TRANSPOSE": "transpose",
    "TRANSPOSE_CONV": "transpose_conv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "unidirectional_sequence_lstm",
    "UNPACK": "unpack",
    "ZEROS_LIKE": "zeros_like",
}

HEADER_NAME = "op_resolver.h"


def resolver_methods(graph: ModelGraph) -> list[tuple[str, str]]:
    """``(op, Add method)`` for each distinct op, in first-use order; refuses ops TFLM lacks."""
    methods = []
    for op in graph.ops_used():
        method = TFLM_ADD_METHODS.get(op)
        if method is None:
            raise FirmwareError(
                f"the model uses the op {op!r}, which TensorFlow Lite Micro has no kernel for (or "
                "tinyfleet does not know its resolver method): change the Keras model to avoid it"
            )
        methods.append((op, method))
    return methods


def kernel_stems(ops: list[str]) -> list[str]:
    """TFLM kernel file stems (``conv``, ``pooling`` …) that implement ``ops``, without duplicates.

    An op missing from :data:`TFLM_KERNEL_FILES` selects every kernel: a slower build, never a
    program that fails to link."""
    if any(op not in TFLM_KERNEL_FILES for op in ops):
        return sorted(set(TFLM_KERNEL_FILES.values()))
    return list(dict.fromkeys(TFLM_KERNEL_FILES[op] for op in ops))


def op_resolver_header(graph: ModelGraph) -> str:
    """The text of ``op_resolver.h`` (C++; TFLM is a C++ library)."""
    methods = resolver_methods(graph)
    guard = header_guard(HEADER_NAME)
    calls = "\n".join(
        f"  if (resolver.{method}() != kTfLiteOk) return kTfLiteError;  // {op}"
        for op, method in methods
    )
    listing = ", ".join(op for op, _ in methods)
    return f"""\
// Generated by tinyfleet from the model flatbuffer: the {len(methods)} op(s) it uses
// ({listing}). Regenerate with `tinyfleet export` whenever the model changes.
#ifndef {guard}
#define {guard}

#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"

constexpr unsigned int kTinyfleetOpCount = {len(methods)};
using TinyfleetOpResolver = tflite::MicroMutableOpResolver<kTinyfleetOpCount>;

// Registers exactly the model's ops; returns kTfLiteError if a registration fails.
inline TfLiteStatus RegisterTinyfleetOps(TinyfleetOpResolver& resolver) {{
{calls}
  return kTfLiteOk;
}}

#endif  // {guard}
"""
