"""The patch pass (tinyc/passes/patch.py): the first stage of a CNN in row bands, every tensor a
window of rows. Outputs stay bit-exact (int8) and equal (float) to the model run layer by layer,
in the reference interpreter and in C on every kind of core; the arena drops below the
layer-by-layer bound; a bad --patch is a one-line error."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tinyc import interpreter
from tinyc.data import random_samples
from tinyc.passes import patch as P
from tinyc.pipeline import Build
from tinyc.targets import get_target

from .conftest import need_arm, need_tools, run_cli, shared_model


def _cnn(path, h: int = 16):
    """A small MobileNet-like CNN: conv s2, depthwise, pointwise, a dilated conv, an inverted
    residual block with its skip Add, max pooling, then a conv, global pooling and flatten."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []

    def conv(name, x, cin, cout, k, s, group=1, dil=1, relu=True):
        w = (rng.standard_normal((cout, cin // group, k, k)) * 0.4).astype(np.float32)
        b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
        inits.extend([helper.make_tensor(name + "_w", TensorProto.FLOAT, w.shape, w.flatten()),
                      helper.make_tensor(name + "_b", TensorProto.FLOAT, b.shape, b)])
        out = name if not relu else name + "_c"
        nodes.append(helper.make_node("Conv", [x, name + "_w", name + "_b"], [out], name=name, strides=[s, s],
                                      pads=[dil * (k // 2)] * 4, group=group, dilations=[dil, dil]))
        if relu:
            nodes.append(helper.make_node("Relu", [out], [name], name=name + "_relu"))
        return name

    x = conv("c1", "x", 3, 8, 3, 2)
    x = conv("dw1", x, 8, 8, 3, 1, group=8)
    x = conv("pw1", x, 8, 16, 1, 1, relu=False)
    x = conv("dil", x, 16, 16, 3, 1, dil=2)
    skip = x
    x = conv("ex", x, 16, 32, 1, 1)
    x = conv("dw2", x, 32, 32, 3, 1, group=32)
    x = conv("pr", x, 32, 16, 1, 1, relu=False)
    nodes.append(helper.make_node("Add", [skip, x], ["res"], name="res"))
    nodes.append(helper.make_node("MaxPool", ["res"], ["mp"], name="mp", kernel_shape=[2, 2], strides=[2, 2]))
    conv("c2", "mp", 16, 24, 3, 2)
    nodes.append(helper.make_node("GlobalAveragePool", ["c2"], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["y"], name="flat"))
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, h, h])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 24])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    np.savez(path.with_suffix(".npz"), x=rng.standard_normal((16, 1, 3, h, h)).astype(np.float32)[:, 0])
    return path


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    return _cnn(tmp_path_factory.mktemp("patch") / "cnn.onnx", 32)


@pytest.fixture(scope="module")
def small_cnn(tmp_path_factory):
    """16x16: it fits the emulated Cortex-M0+'s 16 KiB of RAM."""
    return _cnn(tmp_path_factory.mktemp("patch") / "cnn.onnx", 16)


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_every_stage_and_band_count_equals_layer_by_layer_in_the_reference(cnn, quantize):
    """Every prefix that can run in bands, in 2, 3 and one-row bands, both step sizes: the same
    outputs as the graph run layer by layer, to the bit (int8 and float: every output element sums
    the same products in the same order)."""
    g = Build(cnn, quantize=quantize, calib=cnn.with_suffix(".npz") if quantize else None, progress=False).graph
    feeds = random_samples(g, 2, 7)
    want = [interpreter.run(g, f) for f in feeds]
    stages = P.stages(g)
    assert len(stages) >= 8  # the layout Transpose ... the max pooling
    live = P.live_per_step(g)
    checked = 0
    for st in stages:
        h = g.tensors[st.output].shape[1]
        for nb in sorted({2, 3, h}):
            for fine in (True, False):
                sc = P.schedule(g, st, nb, fine)
                if sc is None:
                    continue
                pg = P.rewrite(_copy(g), P.Choice(sc, 0, max(live)))
                pg.verify()
                for f, w in zip(feeds, want):
                    got = interpreter.run(pg, f)
                    assert all(np.array_equal(got[o], w[o]) for o in g.outputs), (st.nodes[-1].name, nb, fine)
                checked += 1
    assert checked >= 30


def _copy(g):
    import copy

    c = copy.copy(g)
    c.tensors, c.nodes = dict(g.tensors), list(g.nodes)
    return c


def test_windows_hold_a_few_rows_and_nothing_is_recomputed(cnn):
    """One-row steps: a window holds what its readers' kernels span (3 rows under a 3x3, 5 under
    the dilated 3x3, 1 under a pointwise), the skip tensor until the Add; the band nodes' MACs add
    up to the layers' (nothing recomputed)."""
    from tinyc.ops import get_op

    g = Build(cnn, progress=False).graph
    st = next(s for s in P.stages(g) if s.nodes[-1].name == "mp")
    sc = P.schedule(g, st, 4, fine=True)
    by_node = {n.outputs[0]: n.name for n in st.nodes}
    rows = {by_node[t]: r for t, r in sc.rows.items()}
    assert rows["c1"] == 3 and rows["dw1"] == 1 and rows["pw1"] == 5 and rows["ex"] == 3 and rows["dw2"] == 1
    assert rows["dil"] == 2  # read by ex (1 row) and, one row behind the depthwise's halo, by the Add
    info = P.summary(g, [P.Choice(sc, 0, 0)])
    pg = P.rewrite(_copy(g), P.Choice(sc, 0, 0))

    def macs(graph, nodes):
        return sum(get_op(n.op).macs(n, [None if x is None else graph.tensors[x] for x in n.inputs],
                                     [graph.tensors[o] for o in n.outputs]) for n in nodes)

    assert macs(pg, [n for n in pg.nodes if "band_of" in n.attrs]) == macs(g, st.nodes)
    assert info["recomputed_macs"] == 0 and info["stages"][0]["stage"][-1] == "mp"


@pytest.mark.parametrize("target", ["host", "cortex-m0plus", "cortex-m4", "cortex-m55", "esp32c3"])
def test_patched_int8_c_is_bit_exact(cnn, small_cnn, target):
    """The C of a patched int8 model (portable, DSP and Helium kernels, rows at word offsets on a
    core that faults on unaligned words) equals the reference of the unpatched graph."""
    cnn = small_cnn if target == "cortex-m0plus" else cnn
    if target.startswith("cortex"):
        need_arm()
    elif target == "esp32c3":
        need_tools("riscv64-unknown-elf-gcc", "qemu-system-riscv32")
    r = run_cli("verify", str(cnn), "--quantize", "int8", "--calib", str(cnn.with_suffix(".npz")), "-t", target,
                "--patch", "4@mp", "--samples", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "bit-exact" in r.stdout or "max abs error 0," in r.stdout


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_patched_float_c_matches(cnn, target):
    if target != "host":
        need_arm()
    r = run_cli("verify", str(cnn), "-t", target, "--patch", "3@res", "--samples", "2")
    assert r.returncode == 0, r.stdout + r.stderr


def test_compile_reports_the_patch(cnn, tmp_path):
    """report.json, compile's line and the HTML report say what ran in bands and what it saved;
    the bands of a layer share one C function and one copy of its laid-out weights."""
    out = tmp_path / "o"
    r = run_cli("compile", str(cnn), "--quantize", "int8", "--calib", str(cnn.with_suffix(".npz")), "-t", "cortex-m4",
                "-o", str(out), "--patch", "4@mp", "--report")
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "report.json").read_text())
    p = rep["patch"]
    assert [st["last"] for st in p["stages"]] == ["mp"] and p["stages"][0]["grid"] == [4, 1] and p["recomputed_macs"] == 0
    assert p["arena_bytes"] == rep["arena_bytes"] < p["arena_lower_bound_before_bytes"]
    assert "patch: '" in r.stdout and "'mp' (" in r.stdout and "4x1 bands" in r.stdout and f"-> {rep['arena_bytes']:,} B" in r.stdout
    assert 'id="patch-note"' in (out / "report.html").read_text()
    code = (out / "cnn.c").read_text()
    bands = [n for n in rep["layers"] if n["name"].startswith("dw2@")]
    assert len(bands) == 16
    assert code.count("static TINYC_LAYER void") < len(rep["layers"]) // 2
    assert code.count("(laid out for dw2)") <= 1 and "(laid out for dw2@" not in code


def test_patch_off_and_auto_without_gain_leave_the_code_as_it_was(cnn, tmp_path):
    """--patch off is the layer-by-layer build; auto leaves a model alone where bands do not pay
    (the MLPerf Tiny KWS model: its peak is not in a first stage)."""
    kws = shared_model("mlperf-tiny/kws_int8.onnx")
    outs = {}
    for spec in ("off", "auto"):
        o = tmp_path / spec
        r = run_cli("compile", str(kws), "-t", "cortex-m4", "-o", str(o), "--patch", spec)
        assert r.returncode == 0, r.stderr
        outs[spec] = (o / "kws_int8.c").read_text()
        assert "patch" not in json.loads((o / "report.json").read_text())
    assert outs["off"] == outs["auto"]
    o = tmp_path / "cnn_off"
    assert run_cli("compile", str(cnn), "-t", "host", "-o", str(o), "--patch", "off").returncode == 0
    assert "RowMove" not in (o / "cnn.c").read_text() and "@" not in json.dumps(json.loads((o / "report.json").read_text())["layers"])


@pytest.mark.parametrize("spec, message", [
    ("3x2", "the grid is BANDSx1"),
    ("4@nosuch", "no layer 'nosuch'"),
    ("bands", "expected auto, off, or BANDS"),
    ("2@gap", "no stage ending at 'gap' can run in 2 bands"),
])
def test_bad_patch_is_a_one_line_error(cnn, tmp_path, spec, message):
    r = run_cli("compile", str(cnn), "-t", "host", "-o", str(tmp_path / "o"), "--patch", spec)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "o").exists()


def test_mlperf_ic_int8_auto_halves_the_arena_and_matches_tflite_micro(tmp_path):
    """The MLPerf Tiny IC model (ResNet-8, 32x32) from its .tflite: auto runs the first stage in
    bands; the arena is under 0.6x its layer-by-layer bound; the C is bit-exact with TFLite Micro."""
    model = shared_model("mlperf-tiny/ic_int8.tflite")
    r = run_cli("compile", str(model), "-t", "cortex-m4", "-o", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    p = json.loads((tmp_path / "o" / "report.json").read_text())["patch"]
    assert p["arena_bytes"] <= 0.6 * p["arena_lower_bound_before_bytes"] and p["recomputed_macs"] == 0
    r = run_cli("verify", str(model), "-t", "host", "--against", "tflm", "--samples", "2")
    assert r.returncode == 0 and "TFLite Micro" in r.stdout and "patch" not in r.stderr, r.stdout + r.stderr


MOBILENET_V2 = "tflm/mobilenet_v2_pytorch/mobilenet_v2_quantized_1x3x224x224.tflite"
MCUNETV2_BYTES = 172 * 1024  # MCUNetV2's (NeurIPS 2021) figure for int8 MobileNetV2 at 224x224


def test_mobilenet_v2_224_in_bands_fits_mcunetv2s_figure(tmp_path):
    """int8 MobileNetV2 224x224 (TFLite Micro's file) on cortex-m4: by default the first stages run
    in bands; the arena is at most MCUNetV2's 172 KiB (layer by layer it needs 1,404,992 B at best),
    with nothing recomputed."""
    model = shared_model(MOBILENET_V2)
    r = run_cli("compile", str(model), "-t", "cortex-m4", "-o", str(tmp_path / "o"), "--ram-budget", "0", "--flash-budget", "0")
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    p = rep["patch"]
    assert p["arena_lower_bound_before_bytes"] == 1_404_992
    assert rep["arena_bytes"] == p["arena_bytes"] <= MCUNETV2_BYTES
    assert p["recomputed_macs"] == 0 and len(p["stages"]) >= 2
    assert p["stages"][0]["first"] == "input.9_te_transform"  # the input's layout change runs in bands too


@pytest.mark.parametrize("target", ["host", pytest.param("cortex-m4", marks=pytest.mark.emulator)])
def test_mobilenet_v2_224_in_bands_is_bit_exact_with_tflite_micro(target):
    """The patched build (two stages in bands, DSP kernels on the Cortex-M4) against the reference
    and TFLite Micro on the same .tflite (the Cortex-M4 build does not fit its emulated board's
    flash budget: verify warns and runs it)."""
    if target != "host":
        need_arm()
    r = run_cli("verify", str(shared_model(MOBILENET_V2)), "-t", target, "--against", "tflm",
                "--samples", "2" if target == "host" else "1")
    assert r.returncode == 0 and r.stdout.count("bit-exact") == 2, r.stdout + r.stderr


BACKEND = ["host", "cortex-m4", "cortex-m55"]


@pytest.mark.parametrize("target", BACKEND)
def test_kernels_and_offsets_of_bands_golden(target):
    """tests/passes/patch.ir through the back end: every band node's kernel for the target, the
    windows' offsets in the arena, the moves in place, the views with no code."""
    from tinyc.ir_text import parse_graph, print_graph
    from tinyc.passes import run_passes
    from tinyc.passes.pipeline import KERNELS

    from .conftest import ROOT

    g = parse_graph((ROOT / "tests" / "passes" / "patch.ir").read_text())
    kg = run_passes(g, KERNELS, target=get_target(target))
    assert print_graph(kg) == (ROOT / "tests" / "backend" / f"patch.{target}.expected.ir").read_text()
    moves = [n for n in kg.nodes if n.op == "RowMove"]
    assert moves and all(n.attrs["placement"] == "in_place" for n in moves)
    assert all(n.attrs["placement"] == "view" for n in kg.nodes if n.op in ("RowView", "RowJoin"))


def test_diff_compares_layers_of_a_model_that_would_run_in_bands(cnn):
    """tinyc diff dumps every layer's whole output: its debug build runs layer by layer."""
    r = run_cli("diff", str(cnn), "--quantize", "int8", "--calib", str(cnn.with_suffix(".npz")), "-t", "host")
    assert r.returncode == 0 and "every layer equals the reference" in r.stdout, r.stdout + r.stderr
