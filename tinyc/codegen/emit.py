"""Generate ``<name>.h`` and ``<name>.c`` for a graph and a target.

:func:`generate` runs the back-end passes (select-kernels: each node's kernel; plan-memory: arena
offsets) and :func:`print_model` prints the resulting graph: every layer becomes one static
function rendered from its kernel template with the constants the node records; the run function
calls them in order with pointers into the arena (activations), into flash (weights) or to the
caller's buffers (graph inputs and outputs). Printing decides nothing.
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
from ..ir import Graph, itemsize
from ..memory import MemoryPlan, plan as plan_memory
from ..ops import get_op
from ..quant import rounding
from ..resources import data_dir
from ..targets import Target
from . import blob, loops
from .guards import arch_guards
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
    bound: list[tuple[str, str]] = field(default_factory=list)  # (parameter, value): pointers fixed at compile time, declared inside
    emit: bool = True  # False: it calls another layer's function (bands of one layer share theirs)
    band: bool = False  # a node of the patch pass (its calls may fold into loops: codegen/loops.py)


@dataclass
class GeneratedModel:
    name: str
    files: dict[str, str]
    plan: MemoryPlan
    report: dict[str, Any] = field(default_factory=dict)
    binaries: dict[str, bytes] = field(default_factory=dict)  # the weights blob, when asked for
    graph: Graph | None = None  # the kernel-level graph the files print (after select-kernels, plan-memory)


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
        if "options" in n.attrs:  # the kernel options select-kernels chose among
            entry["kernel_choice"] = kernel_choice(n)
        if n.name in mplan.views:
            entry["view"] = True
        if n.name in mplan.inplace:
            entry["in_place"] = True
        out.append(entry)
    return out


OPTION_KEYS = ("form", "kernel", "instructions", "flash_bytes", "flash_read_bytes", "cycles")


def kernel_choice(n) -> dict[str, Any]:
    """report.json's view of a node's kernel choice: the chosen form and every option's estimated
    costs (tinyc/kernel_cost.py), the chosen one marked."""
    options = [dict(zip(OPTION_KEYS, o)) for o in n.attrs["options"]]
    for o in options:
        o["chosen"] = o["form"] == n.attrs["form"]
    return dict(form=n.attrs["form"], kernel=n.attrs["kernel"], options=options)


@rounding.graph_scoped
def generate(g: Graph, target: Target, name: str | None = None, source: str = "", dump: bool = False,
             weights_blob: bool = False, after_pass=None, arena_section: str | None = None) -> GeneratedModel:
    """The C files and report of ``g`` for ``target``: the back-end passes (select-kernels,
    plan-memory; ``after_pass(name, graph)`` sees each result) and then :func:`print_model`.
    ``dump``: a debug build whose run function hands every layer's outputs, right after the
    layer, to ``<name>_debug_dump(node, output, data, bytes)`` (defined by the debug firmware).
    ``weights_blob``: the weights go to ``<name>_weights.bin`` (see codegen/blob.py) instead of
    const arrays, and the code gets ``<name>_load_weights`` to point at a checked blob. The
    caller's graph is not changed. ``arena_section``: the default of ``<NAME>_ARENA_ATTRIBUTES``
    places the arena in that linker section."""
    from ..passes import run_passes
    from ..passes.pipeline import KERNELS

    g.verify()
    kg = run_passes(g, KERNELS, after_pass, target)
    return print_model(kg, target, name=name, source=source, dump=dump, weights_blob=weights_blob,
                       arena_section=arena_section)


def _refs(g: Graph, inputs, outputs) -> dict[str, str]:
    """C expressions of the caller's buffers and of every planned tensor (from ``offsets``)."""
    ref: dict[str, str] = {}
    for io in inputs:
        ref[io["name"]] = io["var"]
    for io in outputs:
        ref.setdefault(io["name"], io["var"])
    for n in g.nodes:
        for o, off in zip(n.outputs, n.attrs["offsets"]):
            if off >= 0:
                ref[o] = f"({_ctype(g, o)} *)(void *)(arena + {off})"
    for k, st in enumerate(g.states):  # the model state's static arrays
        ref[st] = f"state{k}"
    for n in g.nodes:  # a view of a graph input reads the caller's buffer (rows of it: from an offset)
        if n.attrs.get("placement") == "view" and n.outputs[0] not in ref:
            at = n.attrs.get("at")
            ref[n.outputs[0]] = ref[n.inputs[0]] if at is None else \
                f"{ref[at[0]]} + {at[1] // itemsize(g.tensors[n.outputs[0]].dtype)}"
    return ref


def arena_bytes(g: Graph, alignment: int) -> int:
    """The arena the offsets need: the end of the last planned tensor or scratch, aligned."""
    def align(n: int) -> int:
        return (n + alignment - 1) // alignment * alignment

    ends = [align(off + g.tensors[o].nbytes) for n in g.nodes for o, off in zip(n.outputs, n.attrs["offsets"]) if off >= 0]
    ends += [align(n.attrs["scratch_offset"] + n.attrs.get("inplace_scratch" if n.attrs.get("placement") == "in_place"
                                                             else "scratch", 0))
             for n in g.nodes if "scratch_offset" in n.attrs]
    return max(ends, default=0)


def _weight_arrays(g: Graph, runs: list, ref: dict[str, str], weights_blob: bool):
    """The constant arrays the kernels read, in graph order: an input a kernel lays out its own
    way (``laid_out``) is replaced by that constant, or by NULL when the kernel does not read it.
    Returns (arrays, bytes per array, each node's replaced inputs); adds the arrays to ``ref``."""
    reads = {n.name: {j: c for j, c in n.attrs.get("laid_out", [])} for n in runs}
    used = {x for n in runs for j, x in enumerate(n.inputs) if x is not None and j not in reads[n.name]}
    used |= {c for r in reads.values() for c in r.values() if c is not None}
    weights: list[dict[str, Any]] = []
    array_bytes: dict[str, int] = {}
    for t in g.constants():
        if t.name in used or t.name in g.outputs:
            # blob arrays are macros: upper case, clear of kernels' local names
            var = f"TINYC_W{len(weights)}" if weights_blob else f"w{len(weights)}"
            data = t.data if t.size else np.zeros(1, t.data.dtype)
            weights.append(dict(var=var, name=t.name, ctype=_ctype(g, t.name), size=max(t.size, 1),
                                nbytes=t.nbytes, data=t.data, body=None if weights_blob else c_array_body(data)))
            ref[t.name] = var
            array_bytes[var] = t.nbytes
    return weights, array_bytes, reads


def _layer(env, g: Graph, i: int, node, ref: dict[str, str], reads: dict[int, str | None],
           array_bytes: dict[str, int], dump: bool) -> Layer:
    """One layer function: its kernel template rendered with the node's parameters, and the
    pointers it reads and writes."""
    from ..passes.select_kernels import template_of

    a = node.attrs
    ins = [None if x is None else g.tensors[x] for x in node.inputs]
    outs = [g.tensors[o] for o in node.outputs]
    # in place: an input and the output share bytes, so no restrict on this node's pointers
    restrict = "" if a.get("placement") == "in_place" else "restrict "
    params, args = [], []
    state_inputs = get_op(node.op).state_inputs  # updated in place: not const
    for j, x in enumerate(node.inputs):
        if j in reads:
            c = reads[j]
            params.append(f"const {'void' if c is None else _ctype(g, c)} *{restrict}in{j}")
            args.append("NULL" if c is None else ref[c])
        elif x is None:
            params.append(f"const void *in{j}")
            args.append("NULL")
        else:
            params.append(f"{'' if j in state_inputs else 'const '}{_ctype(g, x)} *{restrict}in{j}")
            args.append(ref[x])
    if a.get("input_offset"):  # the kernel reads input 0 from this element on (its pointer moves, not its body)
        args[0] = f"{args[0]} + {a['input_offset']}"
    params += [f"{_ctype(g, o)} *{restrict}out{j}" for j, o in enumerate(node.outputs)]
    args += [ref[o] for o in node.outputs]
    if "scratch_offset" in a:
        params.append("void *scratch")
        args.append(f"(void *)(arena + {a['scratch_offset']})")
    template = template_of(node)
    try:
        body = env.get_template(template).render(p=a["params"], ins=[f"in{j}" for j in range(len(node.inputs))],
                                                 node=node)
    except jinja2.TemplateError as e:
        raise TinycError(f"template {template} failed for node '{node.name}': {e}") from None
    unused = [p.split("*")[-1].split()[-1] for p in params
              if not re.search(r"\b%s\b" % p.split("*")[-1].split()[-1], body)]
    # Addresses fixed at compile time (arena offsets, weight arrays) are bound inside the
    # layer, so the compiler sees them without optimizing across calls (TINYC_LAYER); only
    # the caller's buffers are passed.
    passed = [re.search(r"\b(input|output)\d+\b", arg) is not None for arg in args]
    bound = [(p, arg) for p, arg, keep in zip(params, args, passed) if not keep]
    layer = Layer(i, node.name, node.op, f"layer{i}_{c_identifier(node.op)}", [p for p, keep in zip(params, passed) if keep],
                  unused, [arg for arg, keep in zip(args, passed) if keep], body, outs[0].shape,
                  get_op(node.op).macs(node, ins, outs),
                  weights_bytes=sum(array_bytes.get(arg, 0) for arg in dict.fromkeys(args)), bound=bound)
    layer.band = "band_of" in a or "at" in a
    if dump:
        layer.dumps = [(j, ref[o], g.tensors[o].nbytes) for j, o in enumerate(node.outputs)]
    return layer


def _share_bands(layers: list[Layer], runs) -> list[Layer]:
    """Band nodes (the patch pass's, attribute ``band_of``) whose functions would be the same but
    for the arena and weight pointers they bind share one function, which takes those pointers as
    arguments: a layer run in 28 bands is one or a few functions, not 28."""
    groups: dict[tuple, list[Layer]] = {}
    for layer, n in zip(layers, runs):
        if "band_of" in n.attrs:
            key = (layer.body, tuple(layer.params), tuple(p for p, _ in layer.bound), tuple(layer.unused))
            groups.setdefault(key, []).append(layer)
    for group in groups.values():
        if len(group) < 2:
            continue
        first = group[0]
        for layer in group:
            layer.params = layer.params + [p for p, _ in layer.bound]
            layer.args = layer.args + [arg for _, arg in layer.bound]
            layer.bound = []
            if layer is not first:
                layer.fn, layer.emit = first.fn, False
    return layers


def _copies(g: Graph, outputs, ref: dict[str, str]) -> list[dict[str, Any]]:
    """Outputs that no node writes (a graph input or a constant passed through) are copied."""
    produced = {o for n in g.nodes for o in n.outputs}
    copies = [dict(dst=io["var"], src=ref[io["name"]] if ref[io["name"]] != io["var"] else None,
                   nbytes=g.tensors[io["name"]].nbytes) for io in outputs if io["name"] not in produced]
    if any(c["src"] is None for c in copies):
        raise TinycError("a graph output is also a graph input of the same name")
    return copies


def _glue(env, name: str, source: str, target: Target, uses_math: bool) -> dict[str, str]:
    """Build-system glue so that the folder drops into a firmware: CMake library / ESP-IDF
    component, Makefile fragment, and for an ESP32 target the ESP-IDF manifest (listing that
    target only)."""
    glue = dict(name=name, macro=name.upper(), version=__version__, source=c_comment(source or name), target=target,
                uses_math=uses_math, esp_targets=[target.name])
    files = {"CMakeLists.txt": env.get_template("integration/CMakeLists.txt.j2").render(**glue),
             f"{name}.mk": env.get_template("integration/model.mk.j2").render(**glue)}
    if target.name.startswith("esp32"):
        files["idf_component.yml"] = env.get_template("integration/idf_component.yml.j2").render(**glue)
    return files


@rounding.graph_scoped
def print_model(g: Graph, target: Target, name: str | None = None, source: str = "", dump: bool = False,
                weights_blob: bool = False, arena_section: str | None = None) -> GeneratedModel:
    """Print a graph that has been through select-kernels and plan-memory as C: every decision
    is read from the nodes' attributes; this only renders templates and constants."""
    name = c_identifier(name or g.name)
    env = template_env(target.template_variants)
    runs = [n for n in g.nodes if n.attrs.get("placement") != "view"]  # views: same bytes, no code
    inputs = [_io(g, n, f"input{i}") for i, n in enumerate(g.inputs)]
    outputs = [_io(g, n, f"output{i}") for i, n in enumerate(g.outputs)]
    for io in inputs:
        io["unused"] = not any(io["name"] in n.inputs for n in g.nodes) and io["name"] not in g.outputs
    ref = _refs(g, inputs, outputs)
    states = [dict(var=ref[n], name=n, ctype=_ctype(g, n), size=g.tensors[n].size, nbytes=g.tensors[n].nbytes,
                   init=int(v)) for n, v in g.states.items()]
    if any(st["init"] and g.tensors[st["name"]].dtype not in ("s8", "u8") for st in states):
        raise UnsupportedError("a model state of more than one byte per element must start at 0")
    if arena_section is not None and not re.fullmatch(r"[A-Za-z0-9_.$]+", arena_section):
        raise TinycError(f"--arena-section '{arena_section}': a section name is letters, digits, '_', '.' and '$'")
    weights, array_bytes, reads = _weight_arrays(g, runs, ref, weights_blob)
    index = {n.name: i for i, n in enumerate(g.nodes)}
    layers = _share_bands([_layer(env, g, index[n.name], n, ref, reads[n.name], array_bytes, dump) for n in runs], runs)
    copies = _copies(g, outputs, ref)
    includes = {h for n in runs for h in n.attrs.get("includes", ())}
    if copies or states or any("scratch_offset" in n.attrs for n in runs):
        includes.add("string.h")
    preambles = list(dict.fromkeys(p for n in runs for p in n.attrs.get("preamble", ())))
    helpers = [env.get_template(p).render(single_rounding=rounding.active() == rounding.SINGLE) for p in preambles]
    calls = loops.fold([loops.Call(l.fn, l.args, l.band, l.index, l.dumps) for l in layers])
    ctx = dict(
        name=name, macro=name.upper(), version=__version__, source=source, target=target, helpers=helpers, dump=dump,
        inputs=inputs, outputs=outputs, weights=weights, layers=layers, copies=copies, calls=calls,
        arena_bytes=arena_bytes(g, target.alignment), alignment=target.alignment, includes=sorted(includes),
        weights_bytes=sum(w["nbytes"] for w in weights), blob=None,
        states=states, state_bytes=sum(st["nbytes"] for st in states), state_init=any(st["init"] for st in states),
        guards=arch_guards(target, name, any(g.tensors[t].dtype in ("f32", "f64") for n in runs
                                             for t in n.inputs + n.outputs if t is not None)),
        arena_attributes=f'__attribute__((section("{arena_section}"), aligned({target.alignment})))' if arena_section else "",
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
    files = {f"{name}.h": env.get_template("model.h.j2").render(**ctx), f"{name}.c": code,
             **_glue(env, name, source, target, "math.h" in includes)}
    # the planner's figures for the report (a graph read back from text has only the offsets)
    mplan = g.memory_plan if g.memory_plan is not None else plan_memory(g, target.alignment)
    report = _report(g, name, source, target, mplan, ctx, layers)
    if states:  # a stateful model: its state arrays, beside the arena (RAM)
        report["state_bytes"] = ctx["state_bytes"]
        report["states"] = [dict(name=st["name"], dtype=g.tensors[st["name"]].dtype, shape=list(g.tensors[st["name"]].shape),
                                 bytes=st["nbytes"], start_value=st["init"]) for st in states]
    if weights_blob:
        b = ctx["blob"]
        report["weights_blob"] = dict(file=b["file"], bytes=len(binaries[b["file"]]), payload_bytes=b["payload_bytes"],
                                      format_version=b["version"], fingerprint_sha256=b["fingerprint_hex"],
                                      crc32=binaries[b["file"]][12:16][::-1].hex())
    if g.patch is not None:  # the patch pass ran the first stage in bands
        report["patch"] = patch_report(g.patch, mplan.arena_bytes, report["macs_total"])
    if any("options" in n.attrs for n in g.nodes):  # (targets with kernel options only)
        from ..optimize import budget_of, mode_of
        report["optimize"] = dict(mode=mode_of(g), flash_budget=budget_of(g, target))
    return GeneratedModel(name, files, mplan, report, binaries, g)


def patch_report(summary: dict, arena: int, macs: int) -> dict:
    """report.json's ``patch``: each stage run in bands (its first and last layer, grid bands x 1,
    steps, windows), the arena's layer-by-layer lower bound before and the planned arena after,
    the recomputed MACs (none: windows keep the halos) and the bytes the windows' moves copy."""
    stages = [dict(first=s["stage"][0], last=s["stage"][-1], layers=len(s["stage"]), output=s["output"], grid=s["grid"],
                   rows_per_band=s["rows_per_band"], band_steps=s["band_steps"], stage_bytes=s["stage_bytes"],
                   moved_bytes=s["moved_bytes"], windows=s["windows"]) for s in summary["stages"]]
    return dict(stages=stages, arena_lower_bound_before_bytes=summary["arena_lower_bound_before"], arena_bytes=arena,
                recomputed_macs=summary["recomputed_macs"],
                recomputed_macs_pct=round(100.0 * summary["recomputed_macs"] / macs, 2) if macs else 0.0,
                moved_bytes=sum(s["moved_bytes"] for s in stages), band_steps=sum(s["band_steps"] for s in stages))


def _report(g: Graph, name: str, source: str, target: Target, mplan: MemoryPlan, ctx: dict, layers: list[Layer]) -> dict:
    """report.json as code generation knows it (the build adds quantization quality and sizes)."""
    return dict(
        model=name,
        source=source,
        target=target.name,
        rounding=rounding.active(),
        arena_bytes=mplan.arena_bytes,
        arena_lower_bound_bytes=mplan.lower_bound_bytes,
        arena_lower_bound_no_aliasing_bytes=mplan.no_alias_lower_bound_bytes,
        inplace_gain_bytes=max(0, mplan.no_alias_lower_bound_bytes - mplan.arena_bytes),
        weights_bytes=ctx["weights_bytes"],
        io_bytes=sum(g.tensors[io["name"]].nbytes for io in ctx["inputs"] + ctx["outputs"]),
        macs_total=sum(l.macs for l in layers),
        inputs=[_io_report(io) for io in ctx["inputs"]],
        outputs=[_io_report(io) for io in ctx["outputs"]],
        layers=_report_layers(g, layers, mplan),
        memory_plan=mplan.to_json(),
        memory_tensors=mplan.tensor_ranges(g),
    )
