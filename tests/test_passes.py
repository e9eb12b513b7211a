"""Every pass: a text-IR golden test (tests/passes/NAME.ir in, NAME.expected.ir out) and an
equivalence test through the reference interpreter."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyc import interpreter
from tinyc.compiler import load_graph
from tinyc.errors import TinycError
from tinyc.ir_text import parse_graph, print_graph
from tinyc.passes import PASSES, run_passes
from tinyc.passes.pipeline import DEFAULT

from .conftest import ROOT, shared_model

CASES = Path(__file__).parent / "passes"
GOLDEN = sorted(p.stem for p in CASES.glob("*.ir") if not p.name.endswith(".expected.ir"))


def test_every_pipeline_pass_has_a_golden_test():
    assert set(DEFAULT) - {"dead-code"} <= set(GOLDEN)


def _random_feeds(g, seed=0):
    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal(g.tensors[n].shape).astype(np.float32) for n in g.inputs}


@pytest.mark.parametrize("name", GOLDEN)
def test_pass_golden(name):
    g = parse_graph((CASES / f"{name}.ir").read_text())
    out = run_passes(g, [name])
    assert print_graph(out) == (CASES / f"{name}.expected.ir").read_text()


@pytest.mark.parametrize("name", GOLDEN)
def test_pass_keeps_the_meaning(name):
    """Float passes: within 1e-5 relative. lower-qdq swaps float QDQ arithmetic for TFLite's
    integer arithmetic, so there the tolerance is one step of the output quantization."""
    before = parse_graph((CASES / f"{name}.ir").read_text())
    after = run_passes(parse_graph((CASES / f"{name}.ir").read_text()), [name])
    for seed in range(5):
        feeds = _random_feeds(before, seed)
        a, b = interpreter.run(before, feeds), interpreter.run(after, feeds)
        for o in before.outputs:
            x, y = np.asarray(a[o], np.float64), np.asarray(b[o], np.float64)
            if name == "lower-qdq":
                step = float(after.tensors[after.nodes[-1].inputs[0]].quant.scale)
                assert np.abs(x - y).max() <= step * 1.0001
            else:
                assert np.abs(x - y).max() <= 1e-5 * max(np.abs(x).max(), 1e-30)


def test_parse_rejects_a_declared_shape_the_op_does_not_give():
    with pytest.raises(TinycError, match="declared"):
        parse_graph('graph "g" {\n input %x : f32[1,4]\n %y : f32[4] = Relu(%x) @"r"\n output %y\n}\n')


@pytest.mark.parametrize("rel", ["mnist-8/model.onnx", "mlperf-tiny/kws_float.onnx", "mlperf-tiny/ic_float.onnx",
                                 "mlperf-tiny/ad_float.onnx"])
def test_shared_float_models_have_no_standalone_activations_or_batchnorm(rel):
    g = load_graph(shared_model(rel))
    ops = [n.op for n in g.nodes]
    assert not {"Relu", "Clip", "BatchNormalization", "Identity", "Dropout"} & set(ops), ops


def test_all_pass_names_are_unique_and_described():
    for name, cls in PASSES.items():
        assert cls.name == name and cls.description
