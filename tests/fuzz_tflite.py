"""Importer fuzzing for .tflite files, with the rules of tests/fuzz_onnx.py: every input ends in an
accepted model (exit 0) or one clear error (exit 2, one line starting ``tinyc: error:``), with no
traceback, no hang, no MemoryError and no file written outside the output folder.

Cases come from the seed models of tests/tflite_seeds.py (int8 and float: conv, depthwise, fully
connected, add, softmax, pools, reshape, concat, pad, mean), changed by structure-aware mutators on
the flatbuffer's object API (ModelT: shapes, tensor/buffer/opcode indices, types, options,
quantization, opcodes, operators and tensors deleted or duplicated, ...) and by byte-level mutators
on the serialized file. Case I of seed S is built from ``random.Random(f"tflite-{S}-{I}")`` alone.

A case runs ``read_model`` (tinyc/frontend/tflite_file.py) and then ``tinyc compile model.tflite``
through the CLI in-process; a model the CLI compiles must also be accepted by read_model. The
runner is tests/fuzz_harness.py:

    python -m tests.fuzz_tflite --cases 2000 --seed 1 --out /tmp/fuzz     # run, summary.json in /tmp/fuzz
    python -m tests.fuzz_tflite --seed 1 --case 17                       # run one case, print its outcome
"""
from __future__ import annotations

import copy
import random
import struct
import sys

from . import fuzz_harness
from .fuzz_harness import Case, bytes_mutate
from .tflite_seeds import SEEDS, seed_model, serialize

MODULE = "tests.fuzz_tflite"
MODEL_FILE = "model.tflite"


def _fb():
    from .tflite_builders import _schema

    return _schema()[1]


# --------------------------------------------------------------------------------------------
# Structure-aware mutators on a ModelT: fn(rng, model) -> description, or None when not applicable
# --------------------------------------------------------------------------------------------

INTS = [0, 1, -1, 2, 3, -2, 4, 7, 64, 127, 128, 255, 2**15, 2**16, 2**20, 10**6, 2**31 - 1, -2**31]
SMALL = [0, 1, 2, 3, -1, 4, 8]
FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1 / 256, 1e-30, 1e-45, 1e30, 3.4e38, float("inf"), float("-inf"), float("nan")]
NAMES = ["", " ", "a\nb", "ü\u2028", "x" * 3000, "../../etc/passwd", "int", "main", "input", "conv/w"]


def _sub(m):
    return m.subgraphs[0]


def _pick_tensor(rng, m):
    ts = _sub(m).tensors or []
    return (rng.randrange(len(ts)), ts[rng.randrange(len(ts))]) if ts else (None, None)


def _ops(m):
    return _sub(m).operators or []


def _pick_op(rng, m):
    ops = _ops(m)
    if not ops:
        return None, None
    k = rng.randrange(len(ops))
    return k, ops[k]


def mut_shape(rng, m):
    i, t = _pick_tensor(rng, m)
    shape = list(t.shape if t.shape is not None else [])
    how = rng.choice(["dim", "dim", "small", "drop", "add", "empty"])
    if how in ("dim", "small") and shape:
        k = rng.randrange(len(shape))
        shape[k] = rng.choice(INTS if how == "dim" else SMALL)
    elif how == "drop" and shape:
        shape.pop(rng.randrange(len(shape)))
    elif how == "add":
        shape.insert(rng.randrange(len(shape) + 1), rng.choice(SMALL))
    else:
        shape = []
    t.shape = shape
    return f"tensor {i} shape {how} -> {shape}"


def mut_operator_index(rng, m):
    k, op = _pick_op(rng, m)
    if op is None:
        return None
    which = rng.choice(["inputs", "outputs"])
    vals = list(getattr(op, which) or [])
    n = len(_sub(m).tensors or [])
    v = rng.choice([-1, n, n + 1, rng.randrange(max(n, 1)), rng.randrange(max(n, 1)), 2**31 - 1, -2])
    if vals and rng.random() < 0.8:
        vals[rng.randrange(len(vals))] = v
    else:
        vals.append(v)
    setattr(op, which, vals)
    return f"operator {k} {which} -> {vals}"


def mut_graph_io(rng, m):
    sub = _sub(m)
    which = rng.choice(["inputs", "outputs"])
    n = len(sub.tensors or [])
    vals = list(getattr(sub, which) or [])
    how = rng.choice(["set", "set", "drop", "add"])
    if how == "set" and vals:
        vals[rng.randrange(len(vals))] = rng.choice([-1, n, rng.randrange(max(n, 1))])
    elif how == "drop" and vals:
        vals.pop()
    else:
        vals.append(rng.randrange(max(n, 1)))
    setattr(sub, which, vals)
    return f"subgraph {which} -> {vals}"


def mut_buffer_index(rng, m):
    i, t = _pick_tensor(rng, m)
    n = len(m.buffers or [])
    t.buffer = rng.choice([0, n, n + 5, -1, rng.randrange(max(n, 1)), 2**32 - 1])
    return f"tensor {i} buffer -> {t.buffer}"


def mut_buffer_data(rng, m):
    if not m.buffers or len(m.buffers) < 2:
        return None
    j = rng.randrange(1, len(m.buffers))
    b = m.buffers[j]
    data = list(b.data) if b.data is not None else []
    how = rng.choice(["shrink", "grow", "clear", "offset", "random"])
    if how == "shrink" and data:
        data = data[:rng.randrange(len(data))]
    elif how == "grow":
        data += [rng.randrange(256) for _ in range(rng.choice([1, 4, 100]))]
    elif how == "clear":
        data = []
    elif how == "offset":
        b.offset, b.size = rng.choice([2, 16, 1000, 2**31, 2**63]), rng.choice([0, 4, len(data), 2**40])
        data = []
    else:
        data = [rng.randrange(256) for _ in data]
    b.data = data or None
    return f"buffer {j} {how} -> {len(data)} bytes"


def mut_type(rng, m):
    i, t = _pick_tensor(rng, m)
    t.type = rng.choice(list(range(0, 19)) + [-1, 99, 127, 255])
    return f"tensor {i} type -> {t.type}"


def mut_quantization(rng, m):
    fb = _fb()
    i, t = _pick_tensor(rng, m)
    q = t.quantization or fb.QuantizationParametersT()
    how = rng.choice(["scale_len", "zp_len", "scale", "zp", "dim", "remove", "add"])
    if how == "scale_len":
        q.scale = [0.1] * rng.choice([0, 1, 2, 3, 4, 5, 8, 9])
    elif how == "zp_len":
        q.zeroPoint = [0] * rng.choice([0, 1, 2, 4, 8, 9])
    elif how == "scale" and q.scale:
        q.scale = list(q.scale)
        q.scale[rng.randrange(len(q.scale))] = rng.choice(FLOATS)
    elif how == "zp" and q.zeroPoint:
        q.zeroPoint = list(q.zeroPoint)
        q.zeroPoint[rng.randrange(len(q.zeroPoint))] = rng.choice(INTS)
    elif how == "dim":
        q.quantizedDimension = rng.choice([-1, 0, 1, 2, 3, 4, 100])
    elif how == "remove":
        q = None
    else:
        q.scale, q.zeroPoint = [rng.choice([0.05, 1 / 256, 0.5])], [rng.choice([0, -128, 5])]
    t.quantization = q
    return f"tensor {i} quantization {how}"


OPTION_VALUES = {
    "padding": [0, 1, 2, -1, 7], "strideW": [0, 1, 2, 3, -1, 100, 2**31 - 1], "strideH": [0, 1, 2, 3, -1, 100],
    "dilationWFactor": [0, 1, 2, -1, 50], "dilationHFactor": [0, 1, 2, -1], "filterWidth": [0, 1, 2, 3, -1, 1000],
    "filterHeight": [0, 1, 2, 3, -1, 1000], "fusedActivationFunction": [0, 1, 2, 3, 4, 5, 6, 99],
    "depthMultiplier": [0, 1, 2, 3, -1, 8, 1000], "axis": [-5, -1, 0, 1, 2, 3, 4, 10], "keepDims": [False, True],
    "keepNumDims": [False, True], "beta": [0.0, 1.0, 2.0, -1.0, float("nan"), float("inf"), 1e30],
    "weightsFormat": [0, 1, 2, 99], "newShape": [[1, -1], [1, 72], [72], [2, 36], [], [-1, -1], [0], [1, 2**31 - 1]],
    "asymmetricQuantizeInputs": [False, True], "potScaleInt16": [False, True],
}


def mut_options(rng, m):
    ops = [(k, op) for k, op in enumerate(_ops(m)) if op.builtinOptions is not None]
    if not ops:
        return None
    k, op = rng.choice(ops)
    fields = [f for f in vars(op.builtinOptions) if f in OPTION_VALUES]
    if not fields:
        return None
    f = rng.choice(fields)
    v = rng.choice(OPTION_VALUES[f])
    setattr(op.builtinOptions, f, v)
    return f"operator {k} option {f} -> {v}"


def mut_options_type(rng, m):
    k, op = _pick_op(rng, m)
    if op is None:
        return None
    donor = rng.choice(_ops(m))
    how = rng.choice(["none", "other", "unknown"])
    if how == "none":
        op.builtinOptionsType, op.builtinOptions = 0, None
    elif how == "other":
        op.builtinOptionsType, op.builtinOptions = donor.builtinOptionsType, copy.deepcopy(donor.builtinOptions)
    else:
        op.builtinOptionsType, op.builtinOptions = rng.choice([200, 255]), None
    return f"operator {k} options {how}"


def mut_opcode(rng, m):
    fb = _fb()
    how = rng.choice(["code", "code", "custom", "index", "big", "version"])
    if how == "index":
        k, op = _pick_op(rng, m)
        if op is None:
            return None
        op.opcodeIndex = rng.choice([len(m.operatorCodes or []), -1, 2**31 - 1, 0])
        return f"operator {k} opcode index -> {op.opcodeIndex}"
    if not m.operatorCodes:
        return None
    j = rng.randrange(len(m.operatorCodes))
    oc = m.operatorCodes[j]
    if how == "code":
        c = rng.choice([rng.randrange(0, 210), fb.BuiltinOperator.RELU, fb.BuiltinOperator.LOGISTIC,
                        fb.BuiltinOperator.MUL, fb.BuiltinOperator.SUB, fb.BuiltinOperator.TANH])
        oc.builtinCode, oc.deprecatedBuiltinCode = c, min(c, 127)
    elif how == "custom":
        oc.builtinCode = oc.deprecatedBuiltinCode = fb.BuiltinOperator.CUSTOM
        oc.customCode = rng.choice(NAMES)
    elif how == "big":
        oc.deprecatedBuiltinCode, oc.builtinCode = rng.choice([(127, 0), (127, 5000), (-3, 0), (127, -1), (3, 150)])
    else:
        oc.version = rng.choice([0, 1, 2, 99, -1])
    return f"operator code {j} {how}"


def mut_delete_operator(rng, m):
    k, op = _pick_op(rng, m)
    if op is None:
        return None
    del _ops(m)[k]
    return f"operator {k} deleted"


def mut_duplicate_operator(rng, m):
    k, op = _pick_op(rng, m)
    if op is None:
        return None
    ops = _ops(m)
    ops.insert(rng.randrange(len(ops) + 1), copy.deepcopy(op))
    return f"operator {k} duplicated"


def mut_swap_operators(rng, m):
    ops = _ops(m)
    if len(ops) < 2:
        return None
    a, b = rng.sample(range(len(ops)), 2)
    ops[a], ops[b] = ops[b], ops[a]
    return f"operators {a} and {b} swapped"


def mut_delete_tensor(rng, m):
    i, t = _pick_tensor(rng, m)
    if t is None:
        return None
    del _sub(m).tensors[i]  # (indices after it now name the next tensor)
    return f"tensor {i} deleted"


def mut_duplicate_tensor(rng, m):
    i, t = _pick_tensor(rng, m)
    if t is None:
        return None
    _sub(m).tensors.append(copy.deepcopy(t))
    if rng.random() < 0.5 and _ops(m):  # and read it instead of the original somewhere
        op = rng.choice(_ops(m))
        if op.inputs is not None and len(op.inputs):
            op.inputs = list(op.inputs)
            op.inputs[rng.randrange(len(op.inputs))] = len(_sub(m).tensors) - 1
    return f"tensor {i} duplicated"


def mut_model(rng, m):
    how = rng.choice(["version", "subgraphs", "no_subgraph", "description", "no_buffers", "metadata"])
    if how == "version":
        m.version = rng.choice([0, 1, 2, 4, -1])
    elif how == "subgraphs":
        m.subgraphs.append(copy.deepcopy(m.subgraphs[0]))
    elif how == "no_subgraph":
        m.subgraphs = []
    elif how == "description":
        m.description = rng.choice(NAMES)
    elif how == "no_buffers":
        m.buffers = []
    else:
        fb = _fb()
        md = fb.MetadataT()
        md.name, md.buffer = rng.choice(NAMES), rng.choice([0, 1, len(m.buffers or []), -1])
        m.metadata = [md]
    return f"model {how}"


def mut_names(rng, m):
    i, t = _pick_tensor(rng, m)
    t.name = rng.choice(NAMES)
    return f"tensor {i} name -> {t.name[:20]!r}"


def mut_valid_variant(rng, m):
    """Plausible changes that often keep the model valid (new variants for the frontend)."""
    fb = _fb()
    ops = [op for op in _ops(m) if op.builtinOptions is not None]
    if not ops:
        return None
    op = rng.choice(ops)
    o = op.builtinOptions
    if hasattr(o, "fusedActivationFunction"):
        o.fusedActivationFunction = rng.choice([0, 1, 3])
    if hasattr(o, "padding") and rng.random() < 0.5:
        o.padding = rng.choice([fb.Padding.SAME, fb.Padding.VALID])
    return "plausible options"


MUTATORS = [
    (mut_shape, 6), (mut_operator_index, 5), (mut_graph_io, 3), (mut_buffer_index, 3), (mut_buffer_data, 5),
    (mut_type, 4), (mut_quantization, 6), (mut_options, 8), (mut_options_type, 3), (mut_opcode, 5),
    (mut_delete_operator, 2), (mut_duplicate_operator, 2), (mut_swap_operators, 2), (mut_delete_tensor, 2),
    (mut_duplicate_tensor, 2), (mut_model, 3), (mut_names, 2), (mut_valid_variant, 6),
]


# --------------------------------------------------------------------------------------------
# Byte-level mutations that know the flatbuffer's layout: 32-bit offsets and lengths
# --------------------------------------------------------------------------------------------

def _word_mutate(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Overwrite an aligned 32-bit word (offsets, lengths, indices all are) with an edge value."""
    if len(data) < 8:
        return data, "short"
    pos = rng.randrange(len(data) // 4) * 4
    v = rng.choice([0, 1, 4, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, len(data), len(data) - 4, len(data) + 4,
                    struct.unpack_from("<I", data, pos)[0] + rng.choice([-8, -4, 4, 8])]) & 0xFFFFFFFF
    return data[:pos] + struct.pack("<I", v) + data[pos + 4:], f"word at {pos} -> {v:#x}"


def make_case(seed: int, index: int) -> Case:
    rng = random.Random(f"tflite-{seed}-{index}")
    base = rng.choice(sorted(SEEDS))
    case = Case(seed, index, base)
    m = seed_model(base)
    r = rng.random()
    if r >= 0.1:
        weights = [w for _, w in MUTATORS]
        count = rng.choice([1, 1, 1, 2, 2, 3])
        tries = 0
        while len(case.mutations) < count and tries < 20:
            tries += 1
            fn = rng.choices([f for f, _ in MUTATORS], weights)[0]
            keep = copy.deepcopy(m)
            try:
                desc = fn(rng, m)
                serialize(m)  # (a value the schema cannot hold: undo)
            except Exception:  # noqa: BLE001 - the mutator does not apply to what earlier ones made
                m, desc = keep, None
            if desc:
                case.mutations.append(desc)
    data = serialize(m)
    if r > 0.7:
        for _ in range(rng.choice([1, 1, 2])):
            data, desc = (_word_mutate if rng.random() < 0.4 else bytes_mutate)(rng, data)
            case.mutations.append(desc)
    case.files[MODEL_FILE] = data
    return case


# --------------------------------------------------------------------------------------------
# Running a case
# --------------------------------------------------------------------------------------------

def entry(argv: list[str]) -> int:
    """What a case runs: read_model on the case's file, then (with the frontend) the CLI."""
    from tinyc.errors import TinycError
    from tinyc.frontend.tflite_file import read_model_file

    refusal = ""
    try:
        read_model_file(argv[1])
    except TinycError as e:
        refusal = str(e)
    from tinyc.cli import main

    rc = main(argv)
    if rc == 0 and refusal:
        raise AssertionError(f"the CLI compiled a model that read_model refuses: {refusal}")
    return rc


run_case, run_fuzz = fuzz_harness.runners(__name__)

if __name__ == "__main__":
    sys.exit(fuzz_harness.main(sys.modules[__name__]))
