"""Print tinyc IR as text and parse it back (grammar in ``ir.lark``).

The round trip is exact: constants print as literal lists when small and as hex of their raw
little-endian bytes otherwise; floats print with ``repr`` of the float64 value, which reads back to
the same float32.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError, VisitError

from .errors import TinycError
from .ir import DTYPES, Graph, Node, QuantParams, Tensor

_PLAIN = re.compile(r"[A-Za-z0-9_.$\-]+\Z")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
LITERAL_MAX_ELEMS = 16


def _ref(name: str) -> str:
    return "%" + (name if _PLAIN.match(name) else json.dumps(name))


_NULL = object()  # a parsed "none" value (list placeholders are Python None)


def _scalar(v: Any, elide: bool = False) -> str:
    if v is None:
        return "none"
    if isinstance(v, (bool, np.bool_)):
        return str(int(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return repr(f)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        if elide and len(v) > LITERAL_MAX_ELEMS:
            return "[" + ", ".join(_scalar(x, elide) for x in v[:8]) + f", ... {len(v)} values]"
        return "[" + ", ".join(_scalar(x, elide) for x in v) + "]"
    if isinstance(v, np.ndarray):
        return _scalar(v.tolist(), elide)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):  # a value object, e.g. a Requant
        v = {f.name: getattr(v, f.name) for f in dataclasses.fields(v)}
    if isinstance(v, dict):
        bad = [k for k in v if not isinstance(k, str) or not _IDENT.match(k)]
        if bad:
            raise TinycError(f"cannot print record keys {bad}")
        return "{" + ", ".join(f"{k}={_scalar(x, elide)}" for k, x in sorted(v.items())) + "}"
    raise TinycError(f"cannot print attribute value of type {type(v).__name__}")


def _type(t: Tensor) -> str:
    s = f"{t.dtype}[{','.join(str(d) for d in t.shape)}]"
    q = t.quant
    if q is not None:
        parts = []
        if q.axis is not None:
            parts.append(f"axis={q.axis}")
        scale = q.scale.tolist() if q.scale.ndim else float(q.scale)
        zp = q.zero_point.tolist() if q.zero_point.ndim else int(q.zero_point)
        parts += [f"scale={_scalar(scale)}", f"zp={_scalar(zp)}"]
        s += "{" + ", ".join(parts) + "}"
    return s


def _const_value(t: Tensor, elide: bool = False) -> str:
    assert t.data is not None
    if t.data.size <= LITERAL_MAX_ELEMS and t.dtype != "f16":
        return _scalar(t.data.reshape(-1).tolist())
    if elide:
        return f"...  # {t.data.size} values"
    return 'hex"' + t.data.astype(t.data.dtype.newbyteorder("<")).tobytes().hex() + '"'


def _attrs(d: dict[str, Any], elide: bool = False) -> str:
    """`` {key=value, ...}`` (keys sorted), or nothing for no keys."""
    return " {" + ", ".join(f"{k}={_scalar(v, elide)}" for k, v in sorted(d.items())) + "}" if d else ""


def print_graph(g: Graph, elide: bool = False) -> str:
    """The text form; ``elide`` replaces large constants by '...' (readable, not parseable)."""
    lines = [f"graph {json.dumps(g.name)}{_attrs(g.options)} {{"]
    for name in g.inputs:
        lines.append(f"  input {_ref(name)} : {_type(g.tensors[name])}")
    for name, init in g.states.items():
        lines.append(f"  state {_ref(name)} : {_type(g.tensors[name])} = {int(init)}")
    for t in g.constants():
        lines.append(f"  const {_ref(t.name)} : {_type(t)} = {_const_value(t, elide)}")
    for n in g.nodes:
        res = ", ".join(f"{_ref(o)} : {_type(g.tensors[o])}" for o in n.outputs)
        args = ", ".join("none" if x is None else _ref(x) for x in n.inputs)
        s = f"  {res} = {n.op}({args}){_attrs(n.attrs, elide)} @{json.dumps(n.name)}"
        lines.append(s)
    if g.outputs:
        lines.append("  output " + ", ".join(_ref(o) for o in g.outputs))
    lines.append("}")
    return "\n".join(lines) + "\n"


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = (Path(__file__).with_name("ir.lark")).read_text()
    return Lark(grammar, parser="lalr")


def _unref(tok: str) -> str:
    body = tok[1:]
    return json.loads(body) if body.startswith('"') else body


@v_args(inline=True)
class _Build(Transformer):
    def int(self, tok):
        return int(tok)

    def float(self, tok):
        return float(tok)

    def string(self, tok):
        return json.loads(tok)

    def hex(self, tok):
        return bytes.fromhex(tok[4:-1])

    def list(self, *items):
        return [None if x is _NULL else x for x in items if x is not None]

    def null(self, _tok):
        return _NULL

    def record(self, *kvs):
        return {k: None if v is _NULL else v for k, v in (kv for kv in kvs if kv is not None)}

    def none(self, _tok):
        return None

    def kv(self, key, value):
        return (str(key), value)

    def quant(self, *kvs):
        d = dict(kvs)
        if set(d) - {"axis", "scale", "zp"} or "scale" not in d or "zp" not in d:
            raise TinycError(f"bad quantization parameters {sorted(d)}")
        return QuantParams(
            np.asarray(d["scale"], np.float32), np.asarray(d["zp"], np.int32), d.get("axis")
        )

    def attrs(self, *kvs):
        return {k: None if v is _NULL else v for k, v in kvs}

    def type(self, dtype, *rest):
        quant = rest[-1] if rest and isinstance(rest[-1], QuantParams) else None
        dims = [int(d) for d in rest if d is not None and not isinstance(d, QuantParams)]
        return (str(dtype), tuple(dims), quant)

    def result(self, ref, ty):
        return (_unref(ref), ty)

    def input_decl(self, ref, ty):
        return ("input", _unref(ref), ty)

    def state_decl(self, ref, ty, value):
        return ("state", _unref(ref), ty, value)

    def const_decl(self, ref, ty, value):
        return ("const", _unref(ref), ty, value)

    def output_decl(self, *refs):
        return ("output", [_unref(r) for r in refs])

    def node_decl(self, *parts):
        results, rest = [], list(parts)
        while rest and isinstance(rest[0], tuple):
            results.append(rest.pop(0))
        op = str(rest.pop(0))
        name = None
        if rest and isinstance(rest[-1], Token) and rest[-1].type == "STRING":
            name = json.loads(rest.pop())
        attrs = rest.pop() if rest and isinstance(rest[-1], dict) else {}
        inputs = [None if r is None else _unref(r) for r in rest]
        return ("node", results, op, inputs, attrs, name)

    def start(self, name, *items):
        g = Graph(json.loads(name))
        if items and isinstance(items[0], dict):
            g.options, items = _options(items[0]), items[1:]
        for it in items:
            kind = it[0]
            if kind == "input":
                _, n, (dt, shape, q) = it
                g.add_tensor(Tensor(n, shape, dt, quant=q))
                g.inputs.append(n)
            elif kind == "state":
                _, n, (dt, shape, q), value = it
                g.add_tensor(Tensor(n, shape, dt, quant=q))
                g.states[n] = int(value)
            elif kind == "const":
                _, n, (dt, shape, q), value = it
                np_dt = DTYPES[dt]
                if isinstance(value, bytes):
                    data = np.frombuffer(value, np_dt.newbyteorder("<")).astype(np_dt)
                else:
                    data = np.asarray(value, dtype=np_dt)
                size = int(np.prod(shape, dtype=np.int64))
                if data.size != size:
                    raise TinycError(f"constant '{n}' has {data.size} values, its type needs {size}")
                g.add_tensor(Tensor(n, shape, dt, data.reshape(shape).copy(), q))
            elif kind == "node":
                _, results, op, inputs, attrs, nname = it
                for rn, (dt, shape, q) in results:
                    g.add_tensor(Tensor(rn, shape, dt, quant=q))
                node_name = nname if nname is not None else f"{op}_{len(g.nodes)}"
                g.nodes.append(Node(op, node_name, inputs, [r for r, _ in results], attrs))
            else:
                g.outputs.extend(it[1])
        return g


def _options(d: dict[str, Any]) -> dict[str, Any]:
    """The graph options of the IR header, checked."""
    from . import optimize
    from .quant import rounding

    known = {"rounding", "optimize", "flash_budget", "patch"}
    if set(d) - known:
        raise TinycError(f"unknown graph option(s) {sorted(set(d) - known)}")
    if "rounding" in d:
        rounding.check(d["rounding"])
    if "optimize" in d:
        optimize.check(d["optimize"])
    if "patch" in d:
        from .passes.patch import check as check_patch
        check_patch(d["patch"])
    return d


def parse_graph(text: str, check_types: bool = True) -> Graph:
    """Parse the textual IR; raise TinycError with the position of a syntax error. With
    ``check_types`` every node's declared output types must match its op's inference."""
    try:
        tree = _parser().parse(text)
        g = _Build().transform(tree)
    except VisitError as e:
        raise TinycError(f"bad IR: {e.orig_exc}") from None
    except LarkError as e:
        raise TinycError("bad IR: " + str(e).strip().splitlines()[0]) from None
    g.verify()
    if check_types:
        from .ops import check_types as check

        check(g)
    return g
