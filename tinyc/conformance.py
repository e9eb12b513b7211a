"""Running the ONNX backend node test cases (onnx.backend.test.case.node) through tinyc: the
reference interpreter and generated C compiled for the host, compared with the cases' expected
outputs at the cases' own tolerances. Used by tests/conformance/ and by `python -m tinyc.conformance`."""
from __future__ import annotations

import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import TinycError
from .ops import REGISTRY


# The ops tinyc promises for every exporter (float32; int8 where MCU models use them). The share
# of their node test cases that pass is held at >= 95% by tests/conformance.
CORE_OPS = frozenset("""
    Conv ConvTranspose Gemm MatMul Add Sub Mul Div Min Max Abs Neg Sqrt Pow Exp Log Relu LeakyRelu PRelu
    Clip Sigmoid Tanh HardSigmoid HardSwish Elu Softmax LogSoftmax MaxPool AveragePool GlobalAveragePool
    GlobalMaxPool BatchNormalization Reshape Flatten Squeeze Unsqueeze Transpose Concat Split Slice Pad
    Resize ReduceMean ReduceMax ReduceSum Gather LSTM GRU
""".split())


def is_core(case) -> bool:
    """A case that uses only CORE_OPS."""
    ops = {n.op_type for n in case.model.graph.node}
    return bool(ops) and ops <= CORE_OPS


@dataclass
class Outcome:
    name: str
    status: str  # "pass", "unsupported" (tinyc refuses it with an error), "mismatch"
    detail: str = ""


def cases():
    """The node test cases whose ops are all in tinyc's registry."""
    import onnx.backend.test.case.node as node_cases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        all_cases = node_cases.collect_testcases(None)
    out = []
    for c in all_cases:
        if c.model is None or not c.data_sets:
            continue
        ops = {n.op_type for n in c.model.graph.node if n.domain in ("", "ai.onnx")}
        if ops and all(op in REGISTRY and not REGISTRY[op].internal for op in ops) and \
                all(n.domain in ("", "ai.onnx") for n in c.model.graph.node):
            out.append(c)
    return sorted(out, key=lambda c: c.name)


def _close(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> str:
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return f"shape {list(got.shape)} != {list(want.shape)}"
    if want.dtype.kind in "fc":
        if not np.allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True):
            return f"max abs diff {float(np.nanmax(np.abs(got.astype(np.float64) - want.astype(np.float64)))):.3g}"
        return ""
    return "" if np.array_equal(got, want) else "values differ"


def _array(v) -> np.ndarray:
    import onnx
    from onnx import numpy_helper

    return numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else np.asarray(v)


def _import(case, feeds: dict[str, np.ndarray]):
    """Import and compile a case; an input tinyc needs as a constant (its error says --bind) is
    bound to this data set's value, as a user would do."""
    import re

    from .frontend.onnx import import_model
    from .passes import run_passes
    from .passes.pipeline import DEFAULT

    bind: dict[str, np.ndarray] = {}
    while True:
        try:
            return run_passes(import_model(case.model, name="case", bind=bind), DEFAULT), bind
        except TinycError as e:
            m = re.search(r"--bind (\S+)=FILE\.npy", str(e))
            if not m or m.group(1) in bind or m.group(1) not in feeds:
                raise
            bind[m.group(1)] = feeds[m.group(1)]


def run_case(case, with_c: bool = True, workdir: Path | None = None) -> Outcome:
    from . import interpreter
    from .codegen import generate
    from .emulator import run_on_target
    from .targets import get_target

    input_names = [vi.name for vi in case.model.graph.input
                   if vi.name not in {t.name for t in case.model.graph.initializer}]
    for inputs, expected in case.data_sets:
        inputs, expected = [_array(v) for v in inputs], [_array(v) for v in expected]
        all_feeds = dict(zip(input_names, inputs))
        try:
            g, bound = _import(case, all_feeds)
        except TinycError as e:
            return Outcome(case.name, "unsupported", str(e))
        feeds = {name: v for name, v in all_feeds.items() if name not in bound}
        try:
            got = interpreter.run(g, feeds)
        except TinycError as e:
            return Outcome(case.name, "unsupported", str(e))
        for name, want in zip(g.outputs, expected):
            why = _close(got[name], want, case.rtol, case.atol)
            if why:
                return Outcome(case.name, "mismatch", f"reference: output '{name}': {why}")
        if with_c:
            host = get_target("host")
            try:
                model = generate(g, host, name="case")
                with tempfile.TemporaryDirectory(prefix="tinyc-conf-", dir=workdir) as tmp:
                    c_out = run_on_target(model, host, Path(tmp), [feeds]).outputs[0]
            except TinycError as e:
                return Outcome(case.name, "unsupported", f"C: {e}")
            for name, want in zip(g.outputs, expected):
                why = _close(c_out[name], want, case.rtol, case.atol)
                if why:
                    return Outcome(case.name, "mismatch", f"C: output '{name}': {why}")
    return Outcome(case.name, "pass")


def main() -> int:
    results = [run_case(c) for c in cases()]
    for r in results:
        if r.status != "pass":
            print(f"{r.name}\t{r.status}\t{r.detail}")
    n = len(results)
    passed = sum(r.status == "pass" for r in results)
    print(f"{passed} of {n} cases pass ({passed / max(n, 1):.1%})", file=sys.stderr)
    core = {c.name for c in cases() if is_core(c)}
    core_passed = sum(r.status == "pass" for r in results if r.name in core)
    print(f"core ops: {core_passed} of {len(core)} cases pass ({core_passed / max(len(core), 1):.1%})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
