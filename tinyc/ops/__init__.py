"""The op registry: every op tinyc knows is defined once, here.

An :class:`Op` gives, for one op type:
- ``normalize``: attributes with their schema defaults filled in and ONNX shorthands resolved
  (``auto_pad`` to explicit pads, ...), called once by the frontend with the input tensors;
- ``infer``: output shapes and dtypes from input tensors (tinyc's own shape check);
- ``reference``: the numpy meaning, used by the interpreter and by constant folding;
- ``macs``: multiply-accumulates of one execution (for the report);
- ``kernel``: which C template implements it and the constants that template needs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import UnsupportedError
from ..ir import Graph, Node, Tensor

Shape = tuple[int, ...]


@dataclass
class Kernel:
    """A call to a C template: ``template`` under templates/<variant>/, ``params`` all constants."""

    template: str
    params: dict[str, Any] = field(default_factory=dict)
    includes: tuple[str, ...] = ()
    # shared C helpers (templates rendered once per file before the layers), e.g. s8/fixedpoint.c.j2
    preamble: tuple[str, ...] = ()
    # constant inputs the kernel reads in its own layout (input index -> the array it reads
    # instead, e.g. int8 weights pre-widened to int16 in the order a DSP kernel loads them; None:
    # the kernel does not read it, e.g. a bias folded into a table of the kernel's own)
    weights: dict[int, Any] = field(default_factory=dict)
    # bytes of arena scratch the kernel needs for its step (e.g. im2col rows)
    scratch: int = 0
    # bytes of scratch with which it can write its output over input 0 (e.g. a ring of input
    # rows), None when it cannot; the op decides whether the node's geometry allows it at all
    inplace_scratch: int | None = None
    # the same for an output smaller than input 0, written from the start of its bytes (a
    # depthwise layer at stride 2 or with valid padding: tinyc/ops/dw_inplace.py), None when it cannot
    inplace_smaller: int | None = None
    # how the kernel stores the op's weights where the op offers a choice (Op.weight_forms):
    # "wide" (int8 widened to int16 at compile time: fewer instructions, twice the flash) or
    # "int8" (kept int8 in flash, widened in registers); "" where there is no choice
    form: str = ""
    # how many times one inference walks the kernel's constant weights (flash read per
    # inference = weight bytes x this; e.g. once per pair of output pixels); None: once per
    # output pixel (Op.weight_passes)
    weight_passes: int | None = None


class Op:
    name: ClassVar[str]
    # ONNX inputs that tinyc takes as attributes (input index -> attribute name), e.g. Reshape's
    # shape or Clip's min/max. The frontend requires them to be constants and moves them over.
    attr_inputs: ClassVar[dict[int, str]] = {}
    # ONNX inputs that must be constants but stay tensor inputs (Gather's indices)
    const_inputs: ClassVar[dict[int, str]] = {}
    # expand() also rewrites the op when those inputs are not constants (Clip into Max/Min)
    expands_runtime_inputs: ClassVar[bool] = False
    # False for ops whose constant inputs must survive import as they are (DequantizeLinear of
    # int8 weights is rewritten by the QDQ pass, not folded into float weights).
    foldable: ClassVar[bool] = True
    # True for ops that only move or select values: on quantized tensors they run unchanged
    # (input and output share their quantization parameters).
    quant_transparent: ClassVar[bool] = False
    # True for ops that compute every output element from the same element of each (broadcast)
    # input: they run in any layout, so a Transpose before them can move after them
    pointwise: ClassVar[bool] = False
    # inputs of which only the (static) shape matters: folding does not need their values
    shape_only_inputs: ClassVar[tuple[int, ...]] = ()
    # the ways its kernels can store constant weights (Kernel.form), fastest first: ops whose
    # target kernels offer a speed/flash choice, e.g. ("wide", "int8")
    weight_forms: ClassVar[tuple[str, ...]] = ()
    # attribute limits and notes for the supported-ops table (tinyc/opstable.py)
    limits: ClassVar[str] = ""
    # tinyc's own ops (created by passes): a model file may not use them
    internal: ClassVar[bool] = False
    # attributes the importer adds to a node of a model converted from TFLite, where the op's
    # integer meaning in TFLite differs from ONNX's (ReduceMean: rounding="tflite_mean")
    tflite_attrs: ClassVar[dict[str, Any]] = {}

    # -- traits: what the passes, the memory planner and the quantizer need to know about an op.
    # They query these (never lists of op names); a new op says here what it is.
    # A view: the output is the input's bytes under another shape. No code runs for it (the
    # planner gives both one buffer), a view of a view is one Reshape, and one that keeps the
    # shape is removed.
    view: ClassVar[bool] = False
    # The kernel may write its output over an input of the same shape and type that nothing reads
    # afterwards (elementwise: element i is read before it is written).
    inplace: ClassVar[bool] = False
    # Has an NHWC form (the with_nhwc decorator sets it): layout-nhwc switches 4-D nodes to it.
    nhwc_form: ClassVar[bool] = False
    # May absorb the activation after it (``act_min``/``act_max`` clamp, or ``act`` for a float
    # function), in float by fuse-activation and, for a clamp, in int8 by lower-qdq.
    hosts_activation: ClassVar[bool] = False
    # An activation another op may absorb: "clamp" (Relu, Clip: fused as a clamp, in int8 too;
    # see clamp_range) or "function" (Sigmoid, ...: fused as ``act`` in float only).
    activation: ClassVar[str | None] = None
    # int8 by passing integer values through: lower-qdq makes it the same op on the int8 tensors,
    # followed by a Requantize where the output's parameters differ from the input's (pooling,
    # data movement). With ``requantizes_inputs`` the inputs are brought to the output's parameters
    # first instead (Concat, Max, Min).
    int8_pass_through: ClassVar[bool] = False
    requantizes_inputs: ClassVar[bool] = False
    # Has a 16x8 form (TFLite's scheme: int16 activations, symmetric, int8 weights): lower-qdq
    # accepts int16 activations for it, and its qreference/kernel branch on the tensor types.
    int16x8: ClassVar[bool] = False
    # The output scale its int16 kernel writes (zero point 0), which tinyc's int16x8 quantizer
    # gives its output (TFLite's LOGISTIC, TANH, SOFTMAX: 2^-15); None: from calibration.
    int16_output_scale: ClassVar[float | None] = None
    # Calibration gives all inputs and the output one shared range (Concat).
    int8_shared_range: ClassVar[bool] = False
    # An int8 elementwise op whose constant float operands tinyc's quantizer makes int8 per tensor.
    quantizes_const_operands: ClassVar[bool] = False
    # Only changes how values are represented (quantize, dequantize, requantize): the float
    # meaning is the identity (tinyc diff compares across it).
    quant_only: ClassVar[bool] = False
    # Inputs that are model state (``Graph.states``, SVDF's activation state): the kernel reads and
    # updates them in place, and ``reference``/``qreference`` return their new values after the
    # outputs (the interpreter carries them to the next run).
    state_inputs: ClassVar[tuple[int, ...]] = ()
    # ReduceMean/ReduceMax over all spatial axes is this global pooling op (canonicalize).
    global_pool: ClassVar[str | None] = None

    def is_no_op(self, node: Node, ins: list[Tensor | None], outs: list[Tensor]) -> bool:
        """Whether the node returns its input unchanged (canonicalize removes it): a view that
        keeps the shape, unless the op says more."""
        return self.view and ins[0].shape == outs[0].shape

    def clamp_range(self, attrs: dict[str, Any]) -> tuple[float | None, float | None]:
        """For a "clamp" activation: (low, high), None where unbounded."""
        raise NotImplementedError(f"{self.name} is not a clamp")

    @property
    def lowers_to_int8(self) -> bool:
        """Whether lower-qdq (and so tinyc's quantizer) has an int8 form of this op."""
        return self.int8_pass_through or type(self).lower_int8 is not Op.lower_int8

    def lower_int8(self, cx: Any, node: Node, out: list[str], act: tuple[int, int]) -> Node | None:
        """The int8 node that replaces ``DequantizeLinear -> node [-> clamp] -> QuantizeLinear``
        writing ``out``; ``act``: the fused clamp in output units. ``cx`` (passes/lower_qdq.py)
        finds the integer tensors behind the node's float inputs. The default passes values
        through (``int8_pass_through``); ops with arithmetic of their own override it."""
        return cx.pass_through(node, out, self.requantizes_inputs)

    def calibrated_output(self, node: Node, input_params: tuple[float, int] | None) -> tuple[float, int] | None:
        """int8 (scale, zero point) the output must have, given input 0's, when the int8 kernel
        fixes them; None: from the output's own calibrated range. Pass-through ops keep their
        input's (TFLite's converter does the same)."""
        return input_params if self.int8_pass_through and not self.requantizes_inputs else None

    def internal_ranges(self, node: Node, xs: list[np.ndarray | None]) -> dict[str, tuple[float, float]]:
        """Calibration of values inside the node that no graph tensor holds (the LSTM's cell
        state): name -> (min, max) over one run of the reference on inputs ``xs``. tinyc's
        quantizer stores the calibrated ranges on the node (attribute ``calibrated``)."""
        return {}

    def channel_axes(self, node: Node) -> tuple[int, int] | None:
        """(output-channel axis, input-channel axis) of input 1, for a node that computes each
        output channel as a weighted sum of input channels plus bias input 2 (fold-dead-channels
        rewrites its weights); None when the node is not of that form."""
        return None

    def int8_form(self, node: Node, g: Graph) -> list[Node] | None:
        """The float nodes tinyc's int8 quantizer calibrates and quantizes in place of this one
        (e.g. GRU's last hidden state as a Gather of its sequence output, which then shares its
        quantization); None keeps the node. Raises UnsupportedError, naming the node, for what its
        int8 kernel cannot do."""
        return None

    def int8_weight(self, node: Node, ins: list[Tensor | None]) -> tuple[int, int] | None:
        """(input index, output-channel axis) of the weight tinyc's quantizer makes int8
        (symmetric, per channel), or None."""
        return None

    def normalize(self, attrs: dict[str, Any], ins: list[Tensor | None], opset: int) -> dict[str, Any]:
        return attrs

    def commutes_with_quantize(self, node: Node) -> bool:
        """Whether QuantizeLinear(node(x)) == node(QuantizeLinear(x)) exactly for per-tensor
        parameters (its output values are some of its input's, or maxima of them): the
        hoist-quantize pass may then quantize before the node."""
        return self.quant_transparent

    def infer(self, node: Node, ins: list[Tensor | None]) -> list[tuple[Shape, str]]:
        raise NotImplementedError(f"{self.name}.infer")

    def reference(self, node: Node, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        raise NotImplementedError(f"{self.name}.reference")

    def qreference(self, node: Node, xs: list[np.ndarray | None], ins: list[Tensor | None],
                   outs: list[Tensor]) -> list[np.ndarray]:
        """Integer semantics on quantized tensors (TFLite's int8 recipes)."""
        if self.quant_transparent:
            return self.reference(node, xs)
        raise UnsupportedError(f"{self.name} node '{node.name}' has no int8 version")

    def expand(self, node: Node, ins: list[Tensor | None], g: "Graph") -> list[Node] | None:
        """Rewrite into other ops at import (e.g. QLinearConv into DequantizeLinear/Conv/
        QuantizeLinear); None keeps the node."""
        return None

    def permuted_attrs(self, node: Node, perm: list[int]) -> dict[str, Any] | None:
        """For the cancel-transposes pass: when every data input of the node is
        ``Transpose(a, perm)``, the node equals ``Transpose(node on the a's, perm)`` with these
        attributes (per-axis ones permuted); None when the op is tied to its layout."""
        return dict(node.attrs) if self.pointwise else None

    def inplace_scratch(self, node: Node, ins: list[Tensor | None], outs: list[Tensor], kernel: Kernel) -> int | None:
        """Bytes of scratch with which ``kernel`` (this node's) writes the output over input 0, or
        None if it cannot (ops with the ``inplace`` trait need no scratch and are not asked). An
        output smaller than input 0 is then written from the start of input 0's bytes, which the
        memory planner takes only where that lowers the arena."""
        return None

    def inplace_params(self, node: Node, params: dict[str, Any]) -> dict[str, Any]:
        """The kernel's template parameters when the memory planner has put the output over
        input 0 (e.g. how many input rows its ring keeps)."""
        return params

    def kernel_for(self, node: Node, ins: list[Tensor | None], outs: list[Tensor],
                   variants: tuple[str, ...] = (), weights: str = "wide") -> Kernel:
        """The kernel on a target with these template variants (e.g. ("dsp",)); the same everywhere
        unless the op has target-specific kernels (whose weight layout or scratch differ).
        ``weights``: one of the op's ``weight_forms`` (how a kernel that has the choice stores
        the weights); ops without a choice ignore it."""
        return self.kernel(node, ins, outs)

    def kernel_options(self, node: Node, ins: list[Tensor | None], outs: list[Tensor],
                       variants: tuple[str, ...] = ()) -> list[Kernel]:
        """Every kernel this node could run with on the target, one per weight form that gives a
        different kernel (the select-kernels pass picks one by cost); just ``kernel_for`` for ops
        without ``weight_forms``."""
        if not self.weight_forms:
            return [self.kernel_for(node, ins, outs, variants)]
        options: list[Kernel] = []
        for form in self.weight_forms:
            k = self.kernel_for(node, ins, outs, variants, weights=form)
            if not any(o.template == k.template and o.form == k.form for o in options):
                options.append(k)
        return options

    def weight_passes(self, node: Node, ins: list[Tensor | None], outs: list[Tensor], kernel: Kernel) -> int:
        """How many times ``kernel`` reads all its constant weights in one inference: what the
        kernel says, else once per output pixel (every element of the output but its last axis,
        the channels: a dot product per output with the weights in the inner loop)."""
        if kernel.weight_passes is not None:
            return kernel.weight_passes
        return int(np.prod(outs[0].shape[:-1])) if outs and outs[0].shape else 1

    def macs(self, node: Node, ins: list[Tensor | None], outs: list[Tensor]) -> int:
        return 0

    def kernel(self, node: Node, ins: list[Tensor | None], outs: list[Tensor]) -> Kernel:
        raise UnsupportedError(f"{self.name} (node '{node.name}') has no C kernel")

    def band(self, node: Node, ins: list[Tensor | None], outs: list[Tensor], start: int, stop: int):
        """How the node computes only output rows ``start .. stop`` (axis 1; the patch pass,
        tinyc/ops/band.py): a Band, or None when it cannot. Elementwise ops can; sliding windows
        (Conv, pooling) and Transpose say how themselves."""
        if self.pointwise:
            from .band import pointwise_band
            return pointwise_band(node, ins, outs, start, stop)
        return None


REGISTRY: dict[str, Op] = {}


def register(cls: type[Op]) -> type[Op]:
    REGISTRY[cls.name] = cls()
    return cls


def get_op(name: str) -> Op:
    op = REGISTRY.get(name)
    if op is None:
        raise UnsupportedError(f"unsupported op {name}")
    return op


def float_activation(node: Node, y: np.ndarray) -> np.ndarray:
    """A fused activation on a float op (attrs act_min/act_max set by the fuse-activation pass)."""
    lo, hi = node.attrs.get("act_min"), node.attrs.get("act_max")
    if lo is not None:
        y = np.maximum(y, np.asarray(lo, y.dtype))
    if hi is not None:
        y = np.minimum(y, np.asarray(hi, y.dtype))
    if "act" in node.attrs:
        from .activations import apply

        y = apply(node.attrs["act"], y, node.attrs.get("act_alpha", 0.0), node.attrs.get("act_beta", 0.0))
    return y


def int8_act_range(node: Node) -> tuple[int, int]:
    """The clamp of a fused activation on an int8 op (the full int8 range when none)."""
    return node.attrs.get("act_min", -128), node.attrs.get("act_max", 127)


def int8_clamp(node: Node) -> dict[str, int]:
    """The same range as template parameters."""
    lo, hi = int8_act_range(node)
    return dict(act_min=lo, act_max=hi)


def act_params(node: Node) -> dict:
    """Template parameters of a fused float activation (clamp and/or an activation expression)."""
    from .activations import c_expression

    a = node.attrs
    expr = c_expression(a["act"], "act_in", a.get("act_alpha", 0.0), a.get("act_beta", 0.0)) if "act" in a else None
    return dict(act_min=a.get("act_min"), act_max=a.get("act_max"), act_expr=expr)


def is_quantized(ins: list[Tensor | None], outs: list[Tensor]) -> bool:
    """A node computes in integers when a tensor it reads or writes carries quantization."""
    return any(t is not None and t.quant is not None and not t.dtype.startswith("f") for t in list(ins) + list(outs))


def require_f32(node: Node, ins: list[Tensor | None]) -> None:
    for t in ins:
        if t is not None and t.dtype != "f32":
            raise UnsupportedError(
                f"{node.op} node '{node.name}': input '{t.name}' is {t.dtype}, only f32 is supported"
            )


def c_type(node: Node, dtype: str) -> str:
    """The C type of ``dtype`` in a kernel of ``node``; UnsupportedError for a type generated C
    does not handle (float16)."""
    from ..codegen.cnames import CTYPES

    try:
        return CTYPES[dtype]
    except KeyError:
        raise UnsupportedError(f"{node.op} node '{node.name}': no C kernel for {dtype}") from None


def axes_in_range(what: str, axes, rank: int) -> list[int]:
    """ONNX axes (each in [-rank, rank), none twice) as non-negative ints; UnsupportedError naming
    ``what`` otherwise."""
    axes = [int(a) for a in np.asarray(axes).reshape(-1)]
    if any(not -rank <= a < rank for a in axes):
        raise UnsupportedError(f"{what} {axes} out of range for rank {rank}")
    out = [a % rank for a in axes]
    if len(set(out)) != len(out):
        raise UnsupportedError(f"{what} {axes} repeat an axis")
    return out


def broadcast_shape(node: Node, *shapes: Shape) -> Shape:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*shapes))
    except ValueError:
        raise UnsupportedError(
            f"{node.op} node '{node.name}': shapes {' and '.join(map(str, shapes))} do not broadcast"
        ) from None


def broadcast_strides(shape: Shape, out: Shape) -> list[int]:
    """Element strides of a row-major ``shape`` read along ``out`` (0 where broadcast)."""
    shape = (1,) * (len(out) - len(shape)) + tuple(shape)
    strides, acc = [0] * len(out), 1
    for i in range(len(out) - 1, -1, -1):
        strides[i] = acc if shape[i] != 1 else 0
        acc *= shape[i]
    return strides


def collapse_loops(dims: list[int], *strides: list[int]) -> tuple[list[int], list[list[int]]]:
    """Merge adjacent loop dimensions that every operand walks contiguously; drop size-1 dims."""
    keep = [i for i, d in enumerate(dims) if d != 1] or [len(dims) - 1] if dims else []
    d2 = [dims[i] for i in keep]
    s2 = [[s[i] for i in keep] for s in strides]
    out_d: list[int] = []
    out_s: list[list[int]] = [[] for _ in strides]
    for i, d in enumerate(d2):
        if out_d and all(s[i] * d == os[-1] for s, os in zip(s2, out_s)):
            out_d[-1] *= d
            for s, os in zip(s2, out_s):
                os[-1] = s[i]
            continue
        out_d.append(d)
        for s, os in zip(s2, out_s):
            os.append(s[i])
    if not out_d:
        return [1], [[0] for _ in strides]
    return out_d, out_s


FIXEDPOINT = ("s8/fixedpoint.c.j2",)
FIXEDPOINT16 = ("s16/fixedpoint16.c.j2",)  # (after FIXEDPOINT: it uses its helpers)


def offset_term(in_offset: int, weights: np.ndarray) -> list[int] | None:
    """in_offset * (sum of each output's weights), for int8 kernels that compute TFLite's
    sum (x + in_offset) * w as sum x * w plus this constant. ``weights`` has the output channel
    first. None when a term would come near the int32 range (the kernel then keeps the formula)."""
    term = in_offset * np.asarray(weights, np.int64).reshape(weights.shape[0], -1).sum(axis=1)
    return term.tolist() if np.all(np.abs(term) < 2**30) else None


def copy_kernel(outs: list[Tensor]) -> Kernel:
    """Same bytes, new shape or name: one memcpy."""
    return Kernel("copy.c.j2", dict(nbytes=outs[0].nbytes), includes=("string.h",))


def spatial_2d(node: Node, rank: int) -> None:
    if rank not in (3, 4):
        raise UnsupportedError(
            f"{node.op} node '{node.name}': only 1-D and 2-D spatial inputs are supported (rank {rank})"
        )


def check_types(g: Graph) -> None:
    """Every node's declared output shapes and dtypes must be what its op infers."""
    from ..errors import TinycError

    for n in g.nodes:
        op = get_op(n.op)
        ins = [None if x is None else g.tensors[x] for x in n.inputs]
        try:
            inferred = op.infer(n, ins)
        except UnsupportedError as e:
            raise TinycError(f"{n.op} node '{n.name}': {e}") from None
        for o, (shape, dtype) in zip(n.outputs, inferred):
            t = g.tensors[o]
            if tuple(t.shape) != tuple(shape) or t.dtype != dtype:
                raise TinycError(f"{n.op} node '{n.name}': output '{o}' is declared {t.dtype}{list(t.shape)}, "
                                 f"the op gives {dtype}{list(shape)}")


def _load_all() -> None:
    """Import every module of this package: each registers the ops it defines (a new op is one new
    file here)."""
    import importlib
    import pkgutil

    for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{m.name}")


_load_all()
