"""The order of the build (`tinyc compile --passes` prints it): the front-end steps, the default
graph passes, and the back-end stages after them."""
from __future__ import annotations

DEFAULT = [
    "canonicalize",  # fold constant subgraphs, drop no-op nodes
    "fuse-transformer",  # decomposed LayerNorm/GELU of older exports -> LayerNormalization, Gelu
    "hoist-quantize",  # QuantizeLinear before data movement/max pooling of float inputs (exact)
    "lower-qdq",  # quantized clusters -> integer ops
    "fuse-pad",  # zero padding -> Conv/pool pads
    "fold-batchnorm",  # BatchNormalization and per-channel Mul/Add into Conv/Gemm
    "fuse-matmul-add",  # MatMul + bias -> Gemm
    "fuse-activation",  # Relu/Clip -> clamps inside the producing op
    "fold-dead-channels",  # all-zero output channels -> constants in the readers' bias, dropped
    "layout-nhwc",  # Conv and pooling in NHWC, between Transposes
    "cancel-transposes",  # ... which then cancel, sink or fold into weights
    "canonicalize",  # views of views, no-op reshapes left by the layout change
    "dead-code",
]

# Run on a float model before tinyc quantizes it: everything that keeps float semantics and makes
# the graph the one the int8 kernels will see (activations are fused by lower-qdq afterwards).
BEFORE_QUANTIZATION = ["canonicalize", "fuse-transformer", "fuse-pad", "fold-batchnorm", "fuse-matmul-add", "dead-code"]
# (fold-dead-channels needs the activations fused, so it runs in DEFAULT on the float graph only)

# The back end, for one target (codegen runs them; --dump-ir after=select-kernels shows the result).
KERNELS = [
    "patch",  # the memory-heavy first stage of a CNN in row bands (--patch; off where it does not pay)
    "select-kernels",  # every node -> its C kernel for the target, weights in the kernel's layout
    "plan-memory",  # activations and scratch -> arena offsets; views and in-place execution
]

# Before the graph passes (tinyc/pipeline.py): reading the model, and quantize with --quantize int8.
FRONTEND = {
    "import": "read the model into tinyc IR (--input-shape, --bind)",
    "quantize": f"float -> int8, calibrated on the --calib samples (after {', '.join(BEFORE_QUANTIZATION)})",
}

# After the graph passes: code generation (tinyc/codegen) and the sizes of the compiled code.
BACKEND = {
    "patch": "the first stage of a CNN in row bands, its tensors as windows of rows, where that lowers the arena (--patch)",
    "select-kernels": "a C kernel for every node, by op, types and the target's features (weights in its layout)",
    "plan-memory": "arena offsets for every tensor from its lifetime (views and in-place outputs share)",
    "emit": "the C source and header, build files, weights and report.json",
    "measure": "code, data and stack bytes of the compiled object; RAM and flash against the board",
}
