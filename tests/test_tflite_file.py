"""Reading .tflite files safely (tinyc/frontend/tflite_file.py): the valid seeds, which TFLite
Micro runs, are read; each kind of defect, made by corrupting a seed, is one exact line naming the
file, never a traceback."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from tinyc.errors import TinycError, UnsupportedError
from tinyc.frontend import tflite_file
from tinyc.frontend.tflite_file import buffer_data, builtin_code, builtin_options, read_model, text

from .conftest import ROOT
from .tflite_seeds import SEEDS, seed_model, serialize

SRC = "m.tflite"


def _fb():
    from .tflite_builders import _schema

    return _schema()[1]


def refused(data: bytes) -> str:
    """read_model's message for data (which must be refused)."""
    with pytest.raises(TinycError) as e:
        read_model(data, SRC)
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and msg.startswith(f"{SRC}: "), msg
    return msg.removeprefix(f"{SRC}: ")


def mutated(change, seed: str = "int8_cnn") -> bytes:
    """The seed's bytes after change(model) edits its ModelT."""
    m = seed_model(seed)
    change(m)
    return serialize(m)


def _tensor(m, name: str):
    return next(t for t in m.subgraphs[0].tensors if t.name == name)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seeds_are_valid_tflite_and_read(name):
    """TFLite Micro (the oracle) runs every seed; read_model accepts it and gives the same tensors."""
    from .tflite_builders import run_tflm

    data = serialize(seed_model(name))
    m = seed_model(name)
    x = [np.zeros(t.shape, np.int8 if t.type == _fb().TensorType.INT8 else np.float32)
         for t in (m.subgraphs[0].tensors[i] for i in m.subgraphs[0].inputs)]
    if len(x) == 1:
        assert run_tflm(data, x)[0].size > 0
    model = read_model(data, SRC)
    sg = model.Subgraphs(0)
    assert [text(sg.Tensors(i).Name()) for i in range(sg.TensorsLength())] == [t.name for t in m.subgraphs[0].tensors]
    assert text(model.Description()) == m.description


def test_constants_and_codes_read_back():
    m = seed_model("int8_cnn")
    model = read_model(serialize(m), SRC)
    sg = model.Subgraphs(0)
    w = next(i for i in range(sg.TensorsLength()) if sg.Tensors(i).Name() == b"conv/w")
    assert bytes(buffer_data(model, sg.Tensors(w).Buffer())) == bytes(m.buffers[_tensor(m, "conv/w").buffer].data)
    x = sg.Inputs(0)
    assert buffer_data(model, sg.Tensors(x).Buffer()) is None
    fb = _fb()
    assert [builtin_code(model.OperatorCodes(i)) for i in range(model.OperatorCodesLength())] == \
        [fb.BuiltinOperator.CONV_2D, fb.BuiltinOperator.DEPTHWISE_CONV_2D, fb.BuiltinOperator.AVERAGE_POOL_2D,
         fb.BuiltinOperator.RESHAPE, fb.BuiltinOperator.FULLY_CONNECTED, fb.BuiltinOperator.SOFTMAX]
    import tflite

    dw = builtin_options(sg.Operators(1), tflite.DepthwiseConv2DOptions, "operator 1")
    assert dw.DepthMultiplier() == 2
    with pytest.raises(TinycError, match="^operator 1: its options are DepthwiseConv2DOptions, expected Conv2DOptions$"):
        builtin_options(sg.Operators(1), tflite.Conv2DOptions, "operator 1")


def test_builtin_code_above_127_is_read_from_builtin_code():
    fb = _fb()

    def change(m):
        m.operatorCodes[0].deprecatedBuiltinCode = 127
        m.operatorCodes[0].builtinCode = fb.BuiltinOperator.STABLEHLO_ADD
    model = read_model(mutated(change), SRC)
    assert builtin_code(model.OperatorCodes(0)) == fb.BuiltinOperator.STABLEHLO_ADD


# ---- not a model -------------------------------------------------------------------------------

def test_not_a_flatbuffer():
    assert refused(b"") == "not a TFLite model (0 bytes)"
    assert refused(b"\x08\x00\x00\x00ONNX and more") == "not a TFLite model (file identifier b'ONNX', expected b'TFL3')"
    onnx_file = (ROOT / "examples" / "digits").glob("*.onnx")
    data = next(onnx_file).read_bytes()
    assert refused(data).startswith("not a TFLite model (file identifier")


def test_wrong_file_identifier():
    data = bytearray(serialize(seed_model("int8_cnn")))
    data[4:8] = b"TFL2"
    assert refused(bytes(data)) == "not a TFLite model (file identifier b'TFL2', expected b'TFL3')"


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_every_truncation_is_one_line(seed):
    """Cut at every 7th byte: always one TinycError line (corrupt, or a defect the cut made)."""
    data = serialize(seed_model(seed))
    kinds = set()
    for n in range(0, len(data) - 1, 7):
        kinds.add(refused(data[:n]).split(" (")[0])
    assert "corrupt or truncated TFLite file" in kinds


def test_truncated_message():
    data = serialize(seed_model("int8_cnn"))
    assert refused(data[:40]) == ("corrupt or truncated TFLite file (reading the model table led outside the file: "
                                  "error)")


def test_every_byte_flip_is_read_or_refused_in_one_line():
    """Each byte of a seed inverted in turn: read, or refused with one line (no other exception)."""
    data = serialize(seed_model("int8_blocks"))
    refusals = 0
    for pos in range(len(data)):
        b = bytearray(data)
        b[pos] ^= 0xFF
        try:
            read_model(bytes(b), SRC)
        except TinycError as e:
            assert len(str(e).splitlines()) == 1 and str(e).startswith(SRC)
            refusals += 1
    assert refusals > len(data) // 10


# ---- structure -----------------------------------------------------------------------------

def test_schema_version():
    assert refused(mutated(lambda m: setattr(m, "version", 2))) == "TFLite schema version 2; tinyc reads version 3"


def test_subgraph_count():
    assert refused(mutated(lambda m: setattr(m, "subgraphs", []))) == "the model has no subgraph"

    def two(m):
        m.subgraphs.append(m.subgraphs[0])
    with pytest.raises(UnsupportedError):
        read_model(mutated(two), SRC)
    assert refused(mutated(two)) == ("the model has 2 subgraphs; tinyc compiles models with one (control flow such as "
                                     "IF, WHILE or CALL_ONCE is not supported)")


def test_tensor_indices():
    def op_input(m):
        m.subgraphs[0].operators[2].inputs = [99]
    assert refused(mutated(op_input)) == ("operator 2 (AVERAGE_POOL_2D): input 0 is tensor index 99, out of range (the "
                                          "subgraph has 14 tensors)")

    def op_output(m):
        m.subgraphs[0].operators[0].outputs = [-1]
    assert refused(mutated(op_output)) == ("operator 0 (CONV_2D): output 0 is tensor index -1, out of range (the "
                                           "subgraph has 14 tensors)")

    def graph_io(m):
        m.subgraphs[0].outputs = [14]
    assert refused(mutated(graph_io)) == "subgraph output 0 is tensor index 14, out of range (the subgraph has 14 tensors)"

    def omitted_bias(m):  # -1: an optional input left out, as converters write a bias-less FULLY_CONNECTED
        m.subgraphs[0].operators[4].inputs[2] = -1
    read_model(mutated(omitted_bias), SRC)

    def twice(m):
        m.subgraphs[0].operators[1].outputs = list(m.subgraphs[0].operators[0].outputs)
    assert refused(mutated(twice)) == "operator 1 (DEPTHWISE_CONV_2D): tensor 3 is also written by operator 0"


def test_buffer_index_out_of_range():
    assert refused(mutated(lambda m: setattr(_tensor(m, "fc/w"), "buffer", 40))) == \
        "tensor 10 'fc/w' is buffer index 40, out of range (the model has 8 buffers)"


def test_buffer_size_does_not_match_shape():
    def shrink(m):
        m.buffers[_tensor(m, "conv/w").buffer].data.pop()
    assert refused(mutated(shrink)) == "tensor 1 'conv/w': buffer 1 holds 71 bytes, but shape [4, 3, 3, 2] of INT8 needs 72"

    def reshape(m):
        _tensor(m, "fc/b").shape = [6]
    assert refused(mutated(reshape)) == "tensor 11 'fc/b': buffer 7 holds 20 bytes, but shape [6] of INT32 needs 24"


def test_shapes():
    assert refused(mutated(lambda m: setattr(_tensor(m, "pool"), "shape", [1, -3, 3, 8]))) == \
        "tensor 7 'pool': shape [1, -3, 3, 8] has a negative dimension"
    assert refused(mutated(lambda m: setattr(_tensor(m, "pool"), "shape", [1, 100000, 100000, 8]))) == \
        ("tensor 7 'pool': shape [1, 100000, 100000, 8] needs 80,000,000,000 bytes; tinyc refuses tensors over "
         "268,435,456 bytes")


def test_too_many_constants(monkeypatch):
    monkeypatch.setattr(tflite_file, "MAX_CONSTANT_BYTES", 100)
    assert refused(serialize(seed_model("int8_cnn"))) == \
        "the model's constants take 580 bytes; tinyc refuses more than 100 bytes of constant data"


def test_opcode_index_out_of_range():
    assert refused(mutated(lambda m: setattr(m.subgraphs[0].operators[3], "opcodeIndex", 6))) == \
        "operator 3: opcode index 6 out of range (the model has 6 operator codes)"


def test_custom_op():
    fb = _fb()

    def custom(m):
        m.operatorCodes[5].builtinCode = m.operatorCodes[5].deprecatedBuiltinCode = fb.BuiltinOperator.CUSTOM
        m.operatorCodes[5].customCode = "TFLite_Detection_PostProcess"
    with pytest.raises(UnsupportedError):
        read_model(mutated(custom), SRC)
    assert refused(mutated(custom)) == "operator 5: custom op 'TFLite_Detection_PostProcess' is not supported"


def test_unknown_builtin_code():
    def unknown(m):
        m.operatorCodes[5].deprecatedBuiltinCode = 127
        m.operatorCodes[5].builtinCode = 5000
    top = max(tflite_file.KNOWN_BUILTIN_CODES)
    assert refused(mutated(unknown)) == f"operator 5: unknown builtin operator code 5000 (this reader knows codes up to {top})"

    def placeholder(m):  # 127 in the old field says "see builtin_code", which is 0 here
        m.operatorCodes[5].deprecatedBuiltinCode, m.operatorCodes[5].builtinCode = 127, 0
    assert refused(mutated(placeholder)) == \
        f"operator 5: unknown builtin operator code 127 (this reader knows codes up to {top})"


def test_unknown_tensor_type():
    fb = _fb()
    handled = "FLOAT32, FLOAT16, FLOAT64, INT8, UINT8, INT16, UINT16, INT32, UINT32, INT64, UINT64, BOOL"
    assert refused(mutated(lambda m: setattr(_tensor(m, "fc"), "type", fb.TensorType.COMPLEX64))) == \
        f"tensor 12 'fc' has type COMPLEX64, which tinyc does not handle (it takes {handled})"
    assert refused(mutated(lambda m: setattr(_tensor(m, "fc"), "type", 99))) == \
        f"tensor 12 'fc' has type 99, which tinyc does not handle (it takes {handled})"


def test_quantization():
    def length(m):
        _tensor(m, "conv/w").quantization.scale = [0.1, 0.2, 0.3]
    assert refused(mutated(length)) == \
        "tensor 1 'conv/w': 3 scale values; expected 1 or 4 (the size of quantized dimension 0)"

    def zero_points(m):
        _tensor(m, "dw/w").quantization.zeroPoint = [0, 0]
    assert refused(mutated(zero_points)) == \
        "tensor 4 'dw/w': 2 zero_point values; expected 1 or 8 (the size of quantized dimension 3)"

    def dimension(m):
        _tensor(m, "dw/w").quantization.quantizedDimension = 4
    assert refused(mutated(dimension)) == "tensor 4 'dw/w': quantized_dimension 4 is out of range for shape [1, 3, 3, 8]"

    def scale(m):
        _tensor(m, "input").quantization.scale = [0.0]
    assert refused(mutated(scale)) == "tensor 0 'input': quantization scale 0.0 is not a positive finite number"

    def zero_point(m):
        _tensor(m, "input").quantization.zeroPoint = [200]
    assert refused(mutated(zero_point)) == "tensor 0 'input': zero point 200 is out of range for INT8"


def test_names_with_arbitrary_bytes():
    data = bytearray(serialize(seed_model("int8_cnn")))
    pos = data.index(b"conv/w")
    data[pos:pos + 2] = b"\xff\n"
    data[data.index(b"int8 cnn")] = 0xC3
    model = read_model(bytes(data), SRC)
    names = [text(model.Subgraphs(0).Tensors(i).Name()) for i in range(model.Subgraphs(0).TensorsLength())]
    assert "\ufffd\nnv/w" in names
    assert text(model.Description()).startswith("\ufffd")

    def bad(m):
        t = _tensor(m, "fc")
        t.name, t.type = "a\nb\xff", 99
    assert "\n" not in refused(mutated(bad))


def _external(size_delta: int = 0) -> tuple[bytes, bytes]:
    """int8_cnn with fc/w's buffer stored after the flatbuffer (offset/size, as files over 2 GB
    have it); returns the file and the weights."""
    m = seed_model("int8_cnn")
    b = m.buffers[_tensor(m, "fc/w").buffer]
    weights = bytes(b.data)
    b.data, b.offset, b.size = None, 2**40, len(weights) + size_delta
    head = serialize(m)
    b.offset = (len(head) + 15) // 16 * 16
    data = serialize(m)
    assert len(data) == len(head)
    return data + bytes(b.offset - len(data)) + weights, weights


def test_buffers_after_the_flatbuffer():
    data, weights = _external()
    model = read_model(data, SRC)
    sg = model.Subgraphs(0)
    w = next(sg.Tensors(i) for i in range(sg.TensorsLength()) if sg.Tensors(i).Name() == b"fc/w")
    assert bytes(buffer_data(model, w.Buffer())) == weights
    short, _ = _external(size_delta=1)
    offset = (len(short) - len(weights)) // 16 * 16
    assert refused(short) == f"buffer 6: 361 bytes at offset {offset:,} lie outside the file ({len(short):,} bytes)"


def test_options_read_whole():
    """An options table whose vector points outside the file is corrupt."""
    def change(m):
        m.subgraphs[0].operators[3].builtinOptions.newShape = [1] * 10
    data = bytearray(mutated(change))
    pos = data.index(np.array([10] + [1] * 10, "<i4").tobytes())
    data[pos:pos + 4] = np.array([10**6], "<i4").tobytes()
    assert refused(bytes(data)) == ("corrupt or truncated TFLite file (reading operator 3 led outside the file: "
                                    "ValueError)")

    def unknown(m):
        m.subgraphs[0].operators[3].builtinOptionsType = 250
        m.subgraphs[0].operators[3].builtinOptions = None
    assert refused(mutated(unknown)) == "operator 3 (RESHAPE): unknown options type 250"


def test_read_model_file(tmp_path):
    with pytest.raises(TinycError, match="^model file not found: "):
        tflite_file.read_model_file(tmp_path / "none.tflite")
    p = tmp_path / "m.tflite"
    p.write_bytes(serialize(seed_model("float_cnn")))
    assert tflite_file.read_model_file(p).Subgraphs(0).OperatorsLength() == 5


# ---- through the command line -------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["truncated", "identifier", "custom"])
def test_cli_refuses_in_one_line(kind, tmp_path):
    fb = _fb()
    data = serialize(seed_model("int8_cnn"))
    if kind == "truncated":
        data, want = data[:100], "corrupt or truncated TFLite file"
    elif kind == "identifier":
        data, want = data[:4] + b"XXXX" + data[8:], "file identifier b'XXXX'"
    else:
        def custom(m):
            m.operatorCodes[0].builtinCode = m.operatorCodes[0].deprecatedBuiltinCode = fb.BuiltinOperator.CUSTOM
            m.operatorCodes[0].customCode = "MyOp"
        data, want = mutated(custom), "operator 0: custom op 'MyOp' is not supported"
    (tmp_path / "bad.tflite").write_bytes(data)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("TINYC_TRACEBACK", None)
    r = subprocess.run([sys.executable, "-m", "tinyc", "compile", "bad.tflite", "-o", "out"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinyc: error: ") and want in lines[0], r.stderr
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tflite"]
