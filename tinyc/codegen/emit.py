"""Generate ``<name>.h`` and ``<name>.c`` for a graph and a target.

Every layer becomes one static function rendered from its kernel template with all constants
inlined; the run function calls them in order with pointers into the arena (activations), into
flash (weights) or to the caller's buffers (graph inputs and outputs).
"""
from __future__ import annotations

import functools

import re
from dataclasses import dataclass, field
from typing import Any

import jinja2
import numpy as np

from .. import __version__
from ..errors import TinycError, UnsupportedError
from ..ir import Graph, dtype_of
from ..memory import MemoryPlan, plan as plan_memory
from ..ops import get_op
from ..resources import data_dir
from ..targets import Target
from . import blob
from .cnames import CTYPES, c_array_body, c_comment, c_float, c_identifier


@functools.lru_cache(maxsize=None)
def template_env(variants: tuple[str, ...] = ()) -> jinja2.Environment:
    """Templates are searched in templates/<variant>/ first, then templates/portable/, so a
    target-specific kernel overrides the reference one by having the same file name. One
    environment per search path, kept: it caches the compiled templates (compiling them is most of
    the time code generation takes). The templates see ``variants``, for the few pieces that pick
    instructions inside one file (templates/portable/s8/_dot2.j2)."""
    root = data_dir("templates")
    paths = [str(root / v) for v in variants] + [str(root / "portable"), str(root)]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(paths),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["cfloat"] = c_float
    env.filters["ccomment"] = c_comment
    env.globals["variants"] = variants
    return env


@dataclass
class Layer:
    index: int
    name: str
    op: str
    fn: str
    params: list[str]  # C parameter declarations (the caller's buffers)
    unused: list[str]  # parameters and bound pointers the kernel body does not read (void casts)
    args: list[str]  # C argument expressions
    body: str
    output_shape: tuple[int, ...]
    macs: int
    weights_bytes: int = 0  # bytes of the constant arrays this layer reads
    dumps: list[tuple[int, str, int]] = field(default_factory=list)  # debug build: (output, pointer, bytes)
    bound: list[str] = field(default_factory=list)  # pointers fixed at compile time, declared inside


@dataclass
class GeneratedModel:
    name: str
    files: dict[str, str]
    plan: MemoryPlan
    report: dict[str, Any] = field(default_factory=dict)
    binaries: dict[str, bytes] = field(default_factory=dict)  # the weights blob, when asked for


def _ctype(g: Graph, name: str) -> str:
    dt = g.tensors[name].dtype
    if dt not in CTYPES:
        raise UnsupportedError(f"tensor '{name}' has dtype {dt}, which generated C does not handle")
    return CTYPES[dt]


def _io(g: Graph, name: str, var: str) -> dict[str, Any]:
    t = g.tensors[name]
    d = dict(name=name, var=var, ctype=_ctype(g, name), size=t.size, shape=list(t.shape), dtype=t.dtype)
    if t.quant is not None and t.quant.axis is None:
        d["scale"] = float(t.quant.scale)
        d["zero_point"] = int(t.quant.zero_point)
    return d


def _io_report(io: dict[str, Any]) -> dict[str, Any]:
    return {k: io[k] for k in ("name", "dtype", "shape", "scale", "zero_point") if k in io}


def _report_layers(g: Graph, layers: list[Layer], mplan: MemoryPlan) -> list[dict[str, Any]]:
    """Every node in order; views (no code, same bytes) are marked."""
    by_name = {l.name: l for l in layers}
    out = []
    for n in g.nodes:
        entry = dict(name=n.name, op=n.op, output_shape=list(g.tensors[n.outputs[0]].shape),
                     macs=by_name[n.name].macs if n.name in by_name else 0,
                     weights_bytes=by_name[n.name].weights_bytes if n.name in by_name else 0)
        if n.name in mplan.views:
            entry["view"] = True
        if n.name in mplan.inplace:
            entry["in_place"] = True
        out.append(entry)
    return out


def generate(g: Graph, target: Target, name: str | None = None, source: str = "", dump: bool = False,
             weights_blob: bool = False) -> GeneratedModel:
    """``dump``: a debug build whose run function hands every layer's outputs, right after the
    layer, to ``<name>_debug_dump(node, output, data, bytes)`` (defined by the debug firmware).
    ``weights_blob``: the weights go to ``<name>_weights.bin`` (see codegen/blob.py) instead of
    const arrays, and the code gets ``<name>_load_weights`` to point at a checked blob."""
    g.verify()
    name = c_identifier(name or g.name)
    macro = name.upper()
    variants = target.template_variants
    mplan = plan_memory(g, target.alignment, variants=variants)
    env = template_env(variants)

    # The kernel of every node that runs code (some read their weights in a layout of their own).
    kernels = {}
    for node in g.nodes:
        if node.name in mplan.views:
            continue  # same bytes, new shape: no code
        op = get_op(node.op)
        ins = [None if x is None else g.tensors[x] for x in node.inputs]
        outs = [g.tensors[o] for o in node.outputs]
        kernels[node.name] = (op.kernel_inplace(node, ins, outs, variants) if node.name in mplan.inplace
                              else op.kernel_for(node, ins, outs, variants))

    # C expressions for every tensor a kernel touches.
    ref: dict[str, str] = {}
    inputs = [_io(g, n, f"input{i}") for i, n in enumerate(g.inputs)]
    outputs = [_io(g, n, f"output{i}") for i, n in enumerate(g.outputs)]
    for io in inputs:
        ref[io["name"]] = io["var"]
        io["unused"] = not any(io["name"] in n.inputs for n in g.nodes) and io["name"] not in g.outputs
    for io in outputs:
        ref.setdefault(io["name"], io["var"])
    weights: list[dict[str, Any]] = []

    def weight_var() -> str:  # blob arrays are macros: upper case, clear of kernels' local names
        return f"TINYC_W{len(weights)}" if weights_blob else f"w{len(weights)}"

    def array_body(data: np.ndarray) -> str | None:
        return None if weights_blob else c_array_body(data)

    array_bytes: dict[str, int] = {}  # C array -> bytes
    # constants read as they are (a kernel with its own layout gets its own array below)
    used = {x for n in g.nodes for j, x in enumerate(n.inputs)
            if x is not None and (n.name not in kernels or j not in kernels[n.name].weights)}
    for t in g.constants():
        if t.name in used or t.name in g.outputs:
            var = weight_var()
            weights.append(dict(var=var, name=t.name, ctype=_ctype(g, t.name), size=max(t.size, 1),
                                nbytes=t.nbytes, data=t.data,
                                body=array_body(t.data if t.size else np.zeros(1, t.data.dtype))))
            ref[t.name] = var
            array_bytes[var] = t.nbytes
    relaid: dict[tuple[str, int], tuple[str, str]] = {}  # (node, input) -> (array, C type)
    for node in g.nodes:
        for j, data in sorted(kernels[node.name].weights.items()) if node.name in kernels else ():
            if data is None:  # not read at all
                relaid[(node.name, j)] = ("NULL", "void")
                continue
            var, ctype = weight_var(), CTYPES[dtype_of(data)]
            weights.append(dict(var=var, name=f"{node.inputs[j]} (laid out for {node.name})", ctype=ctype,
                                size=data.size, nbytes=data.nbytes, data=data, body=array_body(data)))
            relaid[(node.name, j)] = (var, ctype)
            array_bytes[var] = data.nbytes
    for b in mplan.buffers:
        for t in b.tensors:
            if t in g.tensors:
                ref[t] = f"({_ctype(g, t)} *)(void *)(arena + {b.offset})"
            else:  # a scratch buffer
                ref[t] = f"(void *)(arena + {b.offset})"
    for n in g.nodes:  # a view of a graph input reads the caller's buffer
        if n.name in mplan.views and n.outputs[0] not in ref:
            ref[n.outputs[0]] = ref[n.inputs[0]]

    layers: list[Layer] = []
    includes: set[str] = set()
    preambles: list[str] = []
    for i, node in enumerate(g.nodes):
        if node.name in mplan.views:
            continue
        op = get_op(node.op)
        ins = [None if x is None else g.tensors[x] for x in node.inputs]
        outs = [g.tensors[o] for o in node.outputs]
        k = kernels[node.name]
        includes.update(k.includes)
        preambles.extend(p for p in k.preamble if p not in preambles)
        in_names = [f"in{j}" for j in range(len(node.inputs))]
        # in place: an input and the output share bytes, so no restrict on this node's pointers
        restrict = "" if node.name in mplan.inplace else "restrict "
        params, args = [], []
        for j, x in enumerate(node.inputs):
            if (node.name, j) in relaid:
                var, ctype = relaid[(node.name, j)]
                params.append(f"const {ctype} *{restrict}in{j}")
                args.append(var)
            elif x is None:
                params.append(f"const void *in{j}")
                args.append("NULL")
            else:
                params.append(f"const {_ctype(g, x)} *{restrict}in{j}")
                args.append(ref[x])
        params += [f"{_ctype(g, o)} *{restrict}out{j}" for j, o in enumerate(node.outputs)]
        args += [ref[o] for o in node.outputs]
        if node.name in mplan.scratch:
            params.append("void *scratch")
            args.append(ref[mplan.scratch[node.name]])
            includes.add("string.h")
        try:
            body = env.get_template(k.template).render(p=k.params, ins=in_names, node=node)
        except jinja2.TemplateError as e:
            raise TinycError(f"template {k.template} failed for node '{node.name}': {e}") from None
        fn = f"layer{i}_{c_identifier(node.op)}"
        unused = [p.split("*")[-1].split()[-1] for p in params
                  if not re.search(r"\b%s\b" % p.split("*")[-1].split()[-1], body)]
        # Addresses fixed at compile time (arena offsets, weight arrays) are bound inside the
        # layer, so the compiler sees them without optimizing across calls (TINYC_LAYER); only
        # the caller's buffers are passed.
        passed = [re.search(r"\b(input|output)\d+\b", a) is not None for a in args]
        bound = [f"{p} = {a};" for p, a, keep in zip(params, args, passed) if not keep]
        layer = Layer(i, node.name, node.op, fn, [p for p, keep in zip(params, passed) if keep], unused,
                      [a for a, keep in zip(args, passed) if keep], body, outs[0].shape, op.macs(node, ins, outs),
                      weights_bytes=sum(array_bytes.get(a, 0) for a in dict.fromkeys(args)), bound=bound)
        if dump:
            layer.dumps = [(j, ref[o], g.tensors[o].nbytes) for j, o in enumerate(node.outputs)]
        layers.append(layer)

    # Outputs that no node writes (a graph input or a constant passed through) are copied.
    copies = []
    produced = {o for n in g.nodes for o in n.outputs}
    for io in outputs:
        if io["name"] not in produced:
            copies.append(dict(dst=io["var"], src=ref[io["name"]] if ref[io["name"]] != io["var"] else None,
                               nbytes=g.tensors[io["name"]].nbytes))
            includes.add("string.h")
    for c in copies:
        if c["src"] is None:
            raise TinycError("a graph output is also a graph input of the same name")

    from ..quant import fixedpoint

    helpers = [env.get_template(p).render(single_rounding=fixedpoint.ROUNDING == "single") for p in preambles]
    ctx = dict(
        name=name, macro=macro, version=__version__, source=source, target=target, helpers=helpers, dump=dump,
        inputs=inputs, outputs=outputs, weights=weights, layers=layers, copies=copies,
        arena_bytes=mplan.arena_bytes, alignment=target.alignment, includes=sorted(includes),
        weights_bytes=sum(w["nbytes"] for w in weights), blob=None,
    )
    binaries: dict[str, bytes] = {}
    if weights_blob:
        offsets, payload = blob.layout([w["nbytes"] for w in weights], target.alignment)
        for w, off in zip(weights, offsets):
            w["offset"] = off
        ctx["blob"] = dict(file=f"{name}_weights.bin", header_bytes=blob.HEADER_BYTES, payload_bytes=payload,
                           version=blob.VERSION, magic=list(blob.MAGIC), crc_table=blob.crc_table(),
                           errors=[(code, key, text) for code, (key, text) in sorted(blob.ERRORS.items(), reverse=True)],
                           fingerprint=blob.PLACEHOLDER, fingerprint_hex="")
    code = env.get_template("model.c.j2").render(**ctx)
    if weights_blob:
        fp = blob.fingerprint(code)
        code = code.replace(blob.PLACEHOLDER, ", ".join(f"0x{b:02x}" for b in fp))
        ctx["blob"]["fingerprint_hex"] = fp.hex()
        binaries[ctx["blob"]["file"]] = blob.pack([w["data"] for w in weights], offsets, payload, target.alignment, fp)
    files = {
        f"{name}.h": env.get_template("model.h.j2").render(**ctx),
        f"{name}.c": code,
    }
    # Build-system glue so that the folder drops into a firmware: CMake library / ESP-IDF
    # component, Makefile fragment, ESP-IDF manifest.
    esp = [target.name] if target.name.startswith("esp32") else ["esp32", "esp32s3", "esp32c3"]
    glue = dict(name=name, macro=macro, version=__version__, source=c_comment(source or name), target=target,
                uses_math="math.h" in includes, esp_targets=esp)
    files["CMakeLists.txt"] = env.get_template("integration/CMakeLists.txt.j2").render(**glue)
    files[f"{name}.mk"] = env.get_template("integration/model.mk.j2").render(**glue)
    files["idf_component.yml"] = env.get_template("integration/idf_component.yml.j2").render(**glue)
    report = dict(
        model=name,
        source=source,
        target=target.name,
        arena_bytes=mplan.arena_bytes,
        arena_lower_bound_bytes=mplan.lower_bound_bytes,
        arena_lower_bound_no_aliasing_bytes=mplan.no_alias_lower_bound_bytes,
        inplace_gain_bytes=max(0, mplan.no_alias_lower_bound_bytes - mplan.arena_bytes),
        weights_bytes=ctx["weights_bytes"],
        io_bytes=sum(g.tensors[io["name"]].nbytes for io in inputs + outputs),
        macs_total=sum(l.macs for l in layers),
        inputs=[_io_report(io) for io in inputs],
        outputs=[_io_report(io) for io in outputs],
        layers=_report_layers(g, layers, mplan),
        memory_plan=mplan.to_json(),
        memory_tensors=mplan.tensor_ranges(g),
    )
    if weights_blob:
        b = ctx["blob"]
        report["weights_blob"] = dict(file=b["file"], bytes=len(binaries[b["file"]]), payload_bytes=b["payload_bytes"],
                                      format_version=b["version"], fingerprint_sha256=b["fingerprint_hex"],
                                      crc32=binaries[b["file"]][12:16][::-1].hex())
    return GeneratedModel(name, files, mplan, report, binaries)
