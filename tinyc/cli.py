"""Command line: tinyc compile | run | verify | targets."""
from __future__ import annotations

import argparse
import re
import os
import sys
import tempfile
from pathlib import Path

from . import __version__
from .errors import TinycError

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

# the target of every command that takes one, when --target is not given
DEFAULT_TARGET = "cortex-m4"


def _target(args):
    """The command's target, said on the first line of its output (on stderr when stdout is JSON)."""
    from .targets import get_target

    target = get_target(args.target or DEFAULT_TARGET)
    print(f"target: {target.name}" + ("" if args.target else " (default)"),
          file=sys.stderr if getattr(args, "json", False) else sys.stdout, flush=True)
    return target


def _shape_arg(values: list[str] | None) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for v in values or []:
        name, sep, dims = v.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(","))
        except ValueError:
            raise TinycError(f"--input-shape '{v}': dimensions must be integers, e.g. input=1,49,10,1") from None
        shapes[name if sep else ""] = shape
    return shapes


def _build(args, target=None, **options):
    """The command's build (tinyc/pipeline.py) from the model options every command shares and
    its samples options (-i, --samples, --seed) where it has them; ``options``: Build options the
    command sets itself."""
    from .data import load_bound_values
    from .pipeline import Build

    shared = dict(input_shapes=_shape_arg(args.input_shape), bind=load_bound_values(args.bind), quantize=args.quantize,
                  calib=args.calib, method=args.calib_method, percentile=args.percentile, io=args.io,
                  name=getattr(args, "name", None), weights_blob=getattr(args, "weights_blob", False),
                  after_step=_dumper(getattr(args, "dump_ir", None)), inputs=getattr(args, "input", None),
                  count=getattr(args, "samples", 1), seed=getattr(args, "seed", 0), rounding=getattr(args, "rounding", None),
                  optimize=getattr(args, "optimize", None), patch=getattr(args, "patch", None),
                  flash_budget=_bytes_arg(getattr(args, "flash_budget", None), "--flash-budget"),
                  eval=args.eval, labels=args.labels, keep_float=[x for x in (args.keep_float or "").split(",") if x])
    return Build(args.model, target, **{**shared, **options})


def _bytes_arg(v: str | None, flag: str) -> int | None:
    """A byte count such as 65536, 64K or 1M (K and M are 1024 and 1024 * 1024); None: the target's."""
    if v is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)(i?[bB])?\s*", v)
    if not m:
        raise TinycError(f"{flag} '{v}': give bytes, e.g. 65536, 64K or 1M (0: no limit)")
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]


def _dumper(spec: str | None):
    """--dump-ir all | after=NAME[,NAME]: print the text IR after those passes (and after import
    and quantize)."""
    if not spec:
        return None
    from .ir_text import print_graph
    from .passes import PASSES
    from .passes.pipeline import FRONTEND

    if spec == "all":
        wanted = None
    elif spec.startswith("after="):
        wanted = set(spec[len("after="):].split(","))
        unknown = wanted - set(PASSES) - set(FRONTEND)
        if unknown:
            raise TinycError(f"--dump-ir: unknown pass {', '.join(sorted(unknown))} (see tinyc compile --passes)")
    else:
        raise TinycError("--dump-ir takes 'all' or 'after=PASS'")

    def dump(name, g):
        if wanted is None or name in wanted:
            print(f"# --- IR after {name} ---")
            print(print_graph(g, elide=True), end="")

    return dump


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _html_report(args, build, emulate=False, bench=False) -> str:
    """The HTML page of a build whose report is complete, on its samples (tinyc/api.py)."""
    from .api import html_report

    return html_report(build, emulate, bench, timeout=getattr(args, "timeout", 600.0), rtol=getattr(args, "rtol", 1e-4))


def cmd_compile(args) -> int:
    from .api import Build as ApiBuild

    if args.passes:
        return _list_stages(args)

    target = _target(args)
    # the API's build (tinyc.compile): report, budgets and the files written
    build = _build(args, target, count=4, seed=0, calib_inputs=True,  # --report's samples
                   arena_section=args.arena_section)
    api = ApiBuild(build, _bytes_arg(args.ram_budget, "--ram-budget"))
    out = api.write(args.output)
    r = build.report
    model = build.model
    q = r.get("quantization", {}).get("outputs")
    files = [out / name for name in api.files]
    print(f"tinyc: {args.model} -> {args.output} (target {target.name})")
    print(f"  {len(r['layers'])} layers, {r['macs_total']:,} MACs")
    print(f"  arena {_human(r['arena_bytes'])} ({r['arena_bytes']:,} B; lower bound {r['arena_lower_bound_bytes']:,} B, "
          f"{r['arena_lower_bound_no_aliasing_bytes']:,} B without views and in-place), "
          f"weights {_human(r['weights_bytes'])} ({r['weights_bytes']:,} B), I/O buffers {r['io_bytes']:,} B")
    m = r.get("measured")
    if m is not None:
        stack = f"stack ~{m['stack_bytes_estimate']:,}" if "stack_bytes_estimate" in m else "stack not measured"
        print(f"  {target.name}: RAM {r['ram_bytes']:,} B (arena and statics {m['bss_bytes'] + m['data_bytes']:,}, "
              f"I/O {r['io_bytes']:,}, {stack}), flash {r['flash_bytes']:,} B (code {m['code_bytes']:,}, "
              f"constants {m['rodata_bytes'] + m['data_bytes']:,}), measured with {m['measured_with']}")
    if q is not None:
        for name, v in q.items():
            print(f"  {args.quantize or 'int8'} vs float on {v['samples']} calibration samples, output '{name}': SQNR {v['sqnr_db']:.1f} dB, "
                  f"max abs error {v['max_abs_error']:.3g}, top-1 agreement {v['top1_agreement']:.1%}")
    _print_quant_feedback(build)
    if args.report:
        html = Path(args.output) / "report.html"
        html.write_text(_html_report(args, build))
        files.append(html)
    print("  wrote " + ", ".join(str(f) for f in files))
    if "patch" in r:
        print("  " + patch_line(r["patch"]))
    if args.verbose:
        print(model.plan.render())
        _print_choices(r)
    return EXIT_OK


def patch_line(p: dict) -> str:
    """One line on the patch pass's decision (report.json ``patch``)."""
    parts = [f"'{st['first']}' .. '{st['last']}' ({st['layers']} layers, {st['grid'][0]}x{st['grid'][1]} bands, "
             f"{st['band_steps']} steps)" for st in p["stages"]]
    return (f"patch: {'; '.join(parts)}; arena {p['arena_lower_bound_before_bytes']:,} B layer by layer (lower bound) "
            f"-> {p['arena_bytes']:,} B; recomputed MACs {p['recomputed_macs']:,} ({p['recomputed_macs_pct']}%), "
            f"windows move {p['moved_bytes']:,} B")


def _print_quant_feedback(build) -> None:
    """--eval's figures and --keep-float's cost (tinyc/quant/evaluate.py)."""
    from .quant.evaluate import render

    if build.evaluation is not None:
        for line in render(build.evaluation, build.quantize):
            print("  " + line)
    k = build.report.get("quantization", {}).get("keep_float")
    if k is not None:
        how = "measured" if k["bytes_measured"] else "estimated"
        print(f"  --keep-float {','.join(k['layers'])}: RAM {k['ram_bytes']:+,} B, flash {k['flash_bytes']:+,} B against "
              f"all-int8 ({how}; {k['all_int8_ram_bytes']:,} B and {k['all_int8_flash_bytes']:,} B); instructions: "
              "tinyc bench --keep-float")


def _print_choices(report) -> None:
    """--verbose: per layer with kernel options, the choice and what each other option would cost."""
    rows = [(i, l) for i, l in enumerate(report["layers"]) if "kernel_choice" in l]
    if not rows:
        return
    mode = report["optimize"]["mode"]
    print(f"kernel choice (--optimize {mode}; estimates: instructions, flash bytes, flash bytes read per inference, cycles):")
    for i, l in rows:
        c = l["kernel_choice"]
        cost = lambda o: (f"{o['kernel']} [{o['form']}] {o['instructions']:,} instr, {o['flash_bytes']:,} B flash, "
                          f"{o['flash_read_bytes']:,} B read, {o['cycles']:,} cycles")
        chosen = next(o for o in c["options"] if o["chosen"])
        print(f"  layer {i} {l['op']}: {cost(chosen)}")
        for o in c["options"]:
            if not o["chosen"]:
                print(f"      instead {cost(o)}")


def cmd_run(args) -> int:
    from .data import save_outputs

    build = _build(args)
    save_outputs(args.output, build.reference)
    print(f"tinyc: ran {len(build.samples.feeds)} sample(s) through the reference interpreter -> {args.output}")
    return EXIT_OK


def cmd_verify(args) -> int:
    from .emulator import run_on_target
    from .oracle import from_args
    from .progress import status

    target = _target(args)
    build = _build(args, target)
    g = build.graph
    samples, expected, origin = build.samples.feeds, build.samples.expected, build.samples.origin
    oracle, tol = from_args(args, build)
    model = build.model
    _warn_fit(build, target, args)
    if args.emulator == "renode":
        if args.weights_blob:
            raise TinycError("--weights-blob is not supported with --emulator renode yet (the Renode firmware "
                             "has its samples built in); verify the blob build with QEMU")
        if oracle is not None:
            raise TinycError("--against is not supported with --emulator renode (its test checks the reference's "
                             "outputs on the board); use QEMU")
        return _verify_renode(args, build)
    where = "natively" if target.emulator.kind == "native" else f"in {target.emulator.system} -M {target.emulator.machine}"
    print(f"tinyc verify: {args.model} on {target.name}, {where}; inputs: {origin}")
    elf_rows, other = [], ([], 0)
    with tempfile.TemporaryDirectory(prefix="tinyc-verify-") as tmp:
        build_dir = Path(args.build_dir) if args.build_dir else Path(tmp)
        _reference_with_progress(build)
        status(f"tinyc: verify: building and running the firmware on {len(samples)} sample(s) {where}")
        try:
            result = run_on_target(model, target, build_dir, samples, timeout=args.timeout,
                                   max_instructions=args.max_instructions)
        finally:
            status("")
        if target.emulator.kind == "qemu":
            from .budget import cross_check, other_code

            elf_rows = cross_check({**model.report, "measured": build.sizes}, build_dir / "firmware.elf")
            other = other_code(build_dir / "firmware.elf", model.name)
    if elf_rows:
        # report.json's figures against what the linked firmware holds (symbol sizes, no padding)
        print("  firmware ELF vs report: " + ", ".join(
            f"{what} {want:,} B " + ("= ELF" if want == got else f"!= ELF {got:,} B (differs by {got - want:+,} B)")
            for what, want, got in elf_rows))
        if any(what == "code" and want != got for what, want, got in elf_rows):
            print("  (code: the report counts the model's object file, padding between functions included, "
                  "before the linker relaxes its calls; the ELF the model's functions once linked)")
        library, harness = other
        print(f"  the firmware's other code: {sum(n for _, n in library):,} B of C library and compiler routines the "
              f"model and the test harness call ({', '.join(f'{name} {n:,}' for name, n in library[:6])}"
              f"{', ...' if len(library) > 6 else ''}), {harness:,} B of test harness (startup, file I/O)")
    _print_quant_feedback(build)
    ok = _compare_outputs(g.outputs, result.outputs, build, args.rtol)
    against = _against(oracle, tol, g, samples, result.outputs)
    if ok and against is None:
        print("PASS" + (f" (reference and {oracle.label})" if oracle else ""))
        return EXIT_OK
    if not ok:
        print(_TOLERANCE_FAIL.format(rtol=args.rtol))
    if against is not None:
        print(f"FAIL {against}")
    return EXIT_MISMATCH


def _warn_fit(build, target, args) -> None:
    """verify runs what compile would refuse for the board (the emulated machine may be bigger), and says so."""
    from .budget import enforce

    if target.emulator.kind == "native":
        return
    try:
        enforce({**build.model.report, **({"measured": build.sizes} if build.sizes else {})}, target, None,
                _bytes_arg(args.flash_budget, "--flash-budget"))
    except TinycError as e:
        print(f"tinyc: warning: {e} (compile would refuse it; verify goes on)", file=sys.stderr)


def _reference_with_progress(build) -> None:
    """Run the reference interpreter on the samples now, with progress on a terminal (nothing
    elsewhere)."""
    from .progress import Progress

    build.reference_step = Progress(len(build.samples.feeds), "verify: reference interpreter").step
    build.reference  # noqa: B018 (computes and keeps it)


def _against(oracle, tol, g, samples, outputs) -> str | None:
    """--against: print each output against the oracle; the failure in one line, or None."""
    if oracle is None:
        return None
    from .oracle import check, failure, report_lines

    verdicts = check(oracle, g, samples, outputs, tol)
    print("\n".join(report_lines(oracle, g, verdicts)))
    return failure(oracle, verdicts)


_TOLERANCE_FAIL = "FAIL (tolerance {rtol:g} relative to the largest reference value; integers must match exactly)"


def _compare_outputs(names, outputs, build, rtol: float) -> bool:
    """Print each output against the reference (and the -i folder's expected outputs): the worst
    sample and how many mismatch; True when all match."""
    from .verify import check_outputs

    truths = [("reference", build.reference)]
    if build.samples.expected is not None:
        truths.append(("expected data", build.samples.expected))
    checks = check_outputs(names, outputs, truths, rtol)
    for c in checks:
        print(c.line())
    return all(c.ok for c in checks)


def _verify_renode(args, build) -> int:
    """Firmware with the samples built in, a .resc and a .robot; renode-test runs them, tinyc reads
    the outputs from the console file Renode wrote and compares them as for QEMU. The build
    folder is kept when the run does not pass."""
    import shutil

    from .emulator import console, renode, renode_test

    target = build.target
    print(f"tinyc verify: {args.model} on {target.name} in Renode ({target.renode.board if target.renode else '-'}); "
          f"inputs: {build.samples.origin}")
    build_dir = Path(args.build_dir) if args.build_dir else Path(tempfile.mkdtemp(prefix="tinyc-renode-"))
    passed = False
    try:
        robot = renode.build(build.model, target, build_dir, build.samples.feeds, build.reference,
                             rtol=args.rtol, timeout=args.timeout)
        print(f"  wrote {robot.name}, {robot.stem}.resc and firmware.elf in {build_dir}")
        console_file = build_dir / renode.CONSOLE
        console_file.unlink(missing_ok=True)
        run = renode_test.run_robot(robot, args.timeout)
        if not run.passed:
            print(f"  renode-test failed: {run.failure or '(no failure message in its results)'}")
            for what, tail in (("Renode's log", run.log_tail), ("renode-test's output", run.output_tail)):
                if tail:
                    print(f"  last lines of {what}:\n" + "\n".join(f"    {t}" for t in tail))
            if "timeout" in run.failure.lower():
                raise TinycError(f"timeout: the test did not finish within --timeout {args.timeout:g} s of wall-clock time")
        lines = console_file.read_text(errors="replace").splitlines() if console_file.exists() else []
        outputs = console.read_outputs(build.model, lines, len(build.samples.feeds), f"{target.name} in Renode")
        ok = _compare_outputs(build.graph.outputs, outputs, build, args.rtol)
        passed = ok and run.passed
        if passed:
            print("PASS")
            return EXIT_OK
        print(_TOLERANCE_FAIL.format(rtol=args.rtol) if not ok else
              "FAIL (renode-test failed while tinyc's comparison passed: see its message above)")
        print(f"  the files are kept in {build_dir}")
        return EXIT_MISMATCH
    except TinycError as e:
        if not args.build_dir and not any(build_dir.iterdir()):
            build_dir.rmdir()
            raise
        raise TinycError(str(e) if str(build_dir) in str(e) else f"{e}; the files are kept in {build_dir}") from None
    finally:
        if passed and not args.build_dir:
            shutil.rmtree(build_dir, ignore_errors=True)


def cmd_bench(args) -> int:
    import json

    from .bench import count

    target = _target(args)
    build = _build(args, target)
    sample = build.samples.feeds[0]
    with tempfile.TemporaryDirectory(prefix="tinyc-bench-") as tmp:
        build_dir = Path(args.build_dir) if args.build_dir else Path(tmp)
        r = count(build.model, target, build_dir, sample, timeout=args.timeout)
        if build.all_int8 is not None:  # --keep-float: what it costs against all-int8
            a = count(build.all_int8.model, target, build_dir / "all_int8", sample, timeout=args.timeout)
            r["keep_float"] = dict(layers=list(build.keep_float), instructions=r["instructions_total"] - a["instructions_total"],
                                   all_int8_instructions=a["instructions_total"])
    r.pop("outputs")
    if args.json:
        print(json.dumps(r, indent=2))
        return EXIT_OK
    print(f"tinyc bench: {args.model} on {target.name} (qemu -M {r['machine']}), one inference, exact instruction counts")
    est = r["estimated_cycles"] is not None
    rows = [("layer", "op", "MACs", "instructions", "instr/MAC", "flash rd B", "SRAM rd B", "SRAM wr B")
            + (("est. cycles",) if est else ())]

    def traffic(d):
        return (f"{d['flash_read_bytes']:,}", f"{d['sram_read_bytes']:,}", f"{d['sram_write_bytes']:,}") \
            + ((f"{d['estimated_cycles']:,}",) if est else ())
    for i, l in enumerate(r["layers"]):
        if l["view"]:
            continue
        rows.append((f"{i}", l["op"], f"{l['macs']:,}", f"{l['instructions']:,}",
                     f"{l['instructions_per_mac']:.2f}" if l["instructions_per_mac"] is not None else "-") + traffic(l))
    lib = sum(r["library_instructions"].values())
    rows.append(("", "library", "", f"{lib:,}", "") + ("",) * (len(rows[0]) - 5))
    rows.append(("", "total", f"{r['macs_total']:,}", f"{r['instructions_total']:,}",
                 f"{r['instructions_per_mac']:.2f}" if r["instructions_per_mac"] is not None else "-") + traffic(r))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(c.rjust(w) if k > 1 else c.ljust(w) for k, (c, w) in enumerate(zip(row, widths))))
    print(f"  arena {r['arena_bytes']:,} B, code {r['code_bytes']:,} B, weights {r['weights_bytes']:,} B (from the ELF)")
    print(f"  memory traffic in total (the library included): flash read {r['flash_read_bytes']:,} B in "
          f"{r['flash_line_reads']:,} line reads, SRAM read {r['sram_read_bytes']:,} B, written {r['sram_write_bytes']:,} B, "
          f"other {r['other_access_bytes']:,} B")
    if "keep_float" in r:
        k = r["keep_float"]
        print(f"  --keep-float {','.join(k['layers'])}: {k['instructions']:+,} instructions against all-int8 "
              f"({k['all_int8_instructions']:,})")
    if est:
        print(f"  estimate: {r['estimated_cycles']:,} cycles = {r['estimated_latency_us']:,} us "
              f"({r['estimated_latency_us'] / 1000:,.2f} ms) per inference -- "
              f"{r['estimate']}; an estimate, not a measurement: see README, \"Memory traffic and estimated latency\"")
    return EXIT_OK


def cmd_diff(args) -> int:
    import json

    from .diff import compare_target, layer_errors, render_table, run_debug_build, summarize
    from .oracle import diff_against, from_args

    target = _target(args)
    build = _build(args, target)
    g = build.graph
    samples, origin = build.samples.feeds, build.samples.origin
    oracle, tol = from_args(args, build, layers=True)
    rows, refs, _ = layer_errors(g, samples)
    dumps = None
    if target.emulator.kind in ("qemu", "native"):
        with tempfile.TemporaryDirectory(prefix="tinyc-diff-") as tmp:
            build_dir = Path(args.build_dir) if args.build_dir else Path(tmp)
            dumps = run_debug_build(g, target, build_dir, samples, name=build.name, source=build.source_name,
                                    timeout=args.timeout)
        compare_target(rows, refs, dumps, args.rtol)
    else:
        print(f"tinyc diff: {target.name} has no emulator; only float vs int8 is shown", file=sys.stderr)
    summary = summarize(rows)
    against = diff_against(oracle, tol, g, samples, rows, refs, dumps) if oracle else None
    if against:
        summary["against"] = against.json
    if args.json:
        print(json.dumps(dict(model=args.model, target=target.name, samples=len(samples), inputs=origin,
                              layers=[r.to_json() for r in rows], **summary,
                              **({"eval": build.evaluation} if build.evaluation else {})), indent=2))
    else:
        where = "natively" if target.emulator.kind == "native" else f"in {target.emulator.system} -M {target.emulator.machine}"
        print(f"tinyc diff: {args.model} on {target.name} ({where}), {len(samples)} sample(s): {origin}")
        print("  SQNR and max err: int8 reference against the float model (the int8 graph dequantized); "
              "drop: SQNR lost in the layer")
        print(render_table(rows, summary, target.name, oracle.kind if oracle else None))
        if against:
            print(against.text)
        _print_quant_feedback(build)
    return EXIT_MISMATCH if summary["first_divergence"] or (against and not against.ok) else EXIT_OK


def cmd_report(args) -> int:
    target = _target(args)
    build = _build(args, target, calib_inputs=True)
    build.samples  # noqa: B018 (a bad -i is an error before anything is generated)
    r = build.report
    build.enforce()
    out = Path(args.output)
    if out.is_dir():
        raise TinycError(f"--output {out} is a folder; give the HTML file's path")
    html = _html_report(args, build, emulate=args.emulate, bench=args.bench)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html)
    print(f"tinyc report: {args.model} on {target.name} -> {out} (arena {r['arena_bytes']:,} B, "
          f"weights {r['weights_bytes']:,} B, {r['macs_total']:,} MACs)")
    return EXIT_OK


def cmd_check(args) -> int:
    from .check import check

    target = _target(args)
    build = _build(args, target, problems=[], placeholder_calib=True)
    res = check(build)
    print(f"tinyc check: {args.model} for {target.name} ({target.board or 'no board'})")
    if args.quantize and not args.calib:
        print(f"  --quantize {args.quantize} without --calib: placeholder ranges from random inputs; kernels, arena "
              "and I/O do not depend on them, weights and code only where a requantization's form does (a few bytes "
              "per channel), accuracy does: measure it with --calib")
    if res.problems:
        for p in res.problems:
            print(f"  cannot compile: {p}")
        print(f"tinyc: error: {len(res.problems)} problem{'s' if len(res.problems) > 1 else ''} found; "
              "the model cannot be compiled for this target", file=sys.stderr)
        return EXIT_USAGE
    how = "measured from the compiled object" if res.flash_measured else "weights only: no cross compiler to measure code"
    budget = lambda b: f"{b:,} B" if b else "no budget"
    stack = res.details.get("stack_bytes_estimate")
    state = res.details.get("state_bytes")  # (a stateful model)
    print(f"  RAM   {res.ram_bytes:,} B (arena {res.details['arena_bytes']:,} B + I/O {res.details['io_bytes']:,} B"
          + (f" + state {state:,} B" if state else "") + (f" + stack ~{stack:,} B" if stack else "") + f") of {budget(target.ram_bytes)}")
    print(f"  flash {res.flash_bytes:,} B ({how}; weights {res.details['weights_bytes']:,} B) of {budget(target.flash_bytes)}")
    if not res.fits(target):
        from .fit import options

        print(f"  options: {', '.join(options(build, target.ram_bytes, target.flash_bytes))}")
        print(f"tinyc: error: the model does not fit {target.name}'s board ({target.board})", file=sys.stderr)
        return EXIT_USAGE
    print("  fits")
    return EXIT_OK


def cmd_targets(args) -> int:
    from .targets import all_targets

    rows = [("target", "core", "features", "align", "board (RAM / flash)", "compiler", "verified by")]
    for t in all_targets().values():
        if t.emulator.kind == "native":
            runs = "running natively"
        elif t.emulator.kind == "qemu":
            runs = f"running in {t.emulator.system} -M {t.emulator.machine}"
        else:
            runs = "compiling only (no emulator)"
        board = f"{t.board}: {_human(t.ram_bytes)} / {_human(t.flash_bytes)}" if t.ram_bytes else "-"
        rows.append((t.name, t.description, ",".join(t.features) or "-", str(t.alignment), board,
                     t.cc + (f" + {t.llc[0]}" if t.llc else ""), runs))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return EXIT_OK


class _ListStages(argparse.Action):
    """--passes: the command lists the build's steps instead of building, so neither the model
    nor -o is required any more (the other options, such as --quantize, still count)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=False, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, True)
        for action in parser._actions:
            action.required = False


def _list_stages(args) -> int:
    """The whole build in order: import, quantize (with --quantize), the graph passes, the back end."""
    from .pipeline import stages

    for i, (name, description) in enumerate(stages(bool(args.quantize)), 1):
        print(f"{i:2d}. {name:18s} {description}")
    return EXIT_OK


CHOICE_BUDGET_HELP = "the flash the per-layer kernel choice must fit (--optimize; default: the board's; 0: none)"
TARGET_HELP = f"target name (see `tinyc targets`; default {DEFAULT_TARGET})"


def build_parser() -> argparse.ArgumentParser:
    from . import optimize
    from .oracle import add_arguments as add_oracle_arguments
    from .quant import rounding

    p = argparse.ArgumentParser(prog="tinyc", description="Compile ONNX models to self-contained C for microcontrollers.")
    p.add_argument("--version", action="version", version=f"tinyc {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def model_args(sp, code: bool = True):
        """The model options of every command that takes a model; ``code``: it generates code
        (for a target, with a C name)."""
        sp.add_argument("model", help="ONNX model file")
        sp.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...",
                        help="fix an input's shape (symbolic dimensions default to 1); repeatable")
        sp.add_argument("--bind", action="append", metavar="NAME=FILE.npy",
                        help="make a graph input a constant with this value (a shape, axes or scales input "
                             "tinyc needs at compile time); repeatable")
        q = sp.add_argument_group("quantization")
        q.add_argument("--quantize", choices=["int8", "int16x8"],
                       help="quantize a float model (needs --calib); int16x8: int16 activations, int8 weights")
        q.add_argument("--calib", metavar="FILE", help="calibration inputs (.npz etc.; N samples stacked)")
        q.add_argument("--calib-method", default="minmax", choices=["minmax", "percentile", "mse"])
        q.add_argument("--percentile", type=float, default=99.99, help="for --calib-method percentile")
        q.add_argument("--eval", metavar="FILE.npz", help="held-out inputs: SQNR, max error and top-1 agreement of int8 "
                       "against float on them, and the per-layer sensitivity ranking")
        q.add_argument("--labels", metavar="FILE.npy", help="with --eval: class index per sample (shape (N,)); adds the "
                       "float and int8 accuracy")
        q.add_argument("--keep-float", metavar="LAYER,...", help="layers (node names, as the sensitivity ranking "
                       "prints them) that stay float in the int8 model")
        q.add_argument("--io", choices=["float", "int8"],
                       help="int8 models: float I/O (quantized/dequantized in the generated code) or int8 I/O "
                            "(default: the model's own; float for --quantize)")
        q.add_argument("--rounding", default=rounding.DEFAULT, choices=rounding.MODES,
                       help="requantization rounding: double (TFLite Micro's default) or single (TFLITE_SINGLE_ROUNDING)")
        if code:
            sp.add_argument("--target", "-t", help=TARGET_HELP)
            sp.add_argument("--name", help="C name prefix (default: the model file name)")
            sp.add_argument("--optimize", choices=optimize.MODES, default=None,
                            help="per-layer kernel choice: speed (fewest instructions), size (least flash) or "
                                 "balanced (fewest estimated cycles on the board; default), within the flash budget")
            sp.add_argument("--patch", metavar="auto|off|BANDS[x1][@LAYER]", default=None,
                            help="run the first stage of a CNN in row bands, each of its tensors kept as a window of "
                                 "rows (nothing recomputed): auto (default: where it lowers the arena by 10%%), off, "
                                 "or BANDS bands of the stage ending at LAYER")

    c = sub.add_parser("compile", help="generate C code and report.json")
    model_args(c)
    c.add_argument("-o", "--output", required=True, help="output folder")
    c.add_argument("--verbose", "-v", action="store_true", help="print the memory plan and the per-layer kernel choice")
    c.add_argument("--report", action="store_true", help="also write report.html (see `tinyc report`)")
    c.add_argument("--weights-blob", action="store_true",
                   help="weights in a separate checked file <name>_weights.bin, loaded at run time with <name>_load_weights")
    c.add_argument("--arena-section", metavar="NAME",
                   help="put the arena in linker section NAME (the default of <NAME>_ARENA_ATTRIBUTES in the code)")
    c.add_argument("--passes", action=_ListStages, help="list the build's steps (with --quantize: quantize too) and exit")
    c.add_argument("--dump-ir", metavar="all|after=PASS", help="print the text IR after every pass, or after PASS")
    c.add_argument("--ram-budget", metavar="BYTES", help="fail when the model needs more RAM (default: the target board's; 0: none)")
    c.add_argument("--flash-budget", metavar="BYTES", help="fail when the model needs more flash (default: the board's; 0: none)")
    c.set_defaults(fn=cmd_compile)

    r = sub.add_parser("run", help="run the reference interpreter")
    model_args(r, code=False)
    r.add_argument("--input", "-i", required=True, help=".npz (keyed by input name), .npy, .pb or ONNX test-data folder")
    r.add_argument("-o", "--output", required=True, help="output .npz")
    r.set_defaults(fn=cmd_run)

    def run_args(sp, samples: int, timeout: float, inputs_help: str):
        """Options of the commands that run samples on a target."""
        model_args(sp)
        sp.add_argument("--input", "-i", help=inputs_help)
        sp.add_argument("--samples", type=int, default=samples, help="random samples when --input is absent")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--rtol", type=float, default=1e-4, help="float tolerance relative to the largest reference value")
        sp.add_argument("--timeout", type=float, default=timeout, help="seconds before an emulator run is stopped")

    inputs = "inputs (.npz, .npy, .pb or ONNX test-data folder); random when absent"
    v = sub.add_parser("verify", help="build, run on the target (emulated) and compare with the reference")
    run_args(v, 3, 300.0, inputs)
    v.add_argument("--build-dir", help="keep the firmware build in this folder")
    v.add_argument("--weights-blob", action="store_true", help="build with the weights in a blob (as compile "
                   "--weights-blob) that the firmware loads and checks before running")
    v.add_argument("--max-instructions", type=int, help="the emulated run's instruction budget "
                   "(default: from the model's MACs and tensor sizes, generous)")
    v.add_argument("--flash-budget", metavar="BYTES", help=CHOICE_BUDGET_HELP)
    v.add_argument("--emulator", choices=["qemu", "renode"], default="qemu",
                   help="qemu (default; natively for host) or renode (renode-test with a generated .robot test)")
    add_oracle_arguments(v)
    v.set_defaults(fn=cmd_verify)

    b = sub.add_parser("bench", help="exact instructions per inference in QEMU, per layer and in total")
    model_args(b)
    b.add_argument("--input", "-i", help="the sample to run (default: random, --seed)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--json", action="store_true", help="machine-readable output")
    b.add_argument("--build-dir", help="keep the firmware, plugin and counts here")
    b.add_argument("--timeout", type=float, default=600.0)
    b.add_argument("--flash-budget", metavar="BYTES", help=CHOICE_BUDGET_HELP)
    b.set_defaults(fn=cmd_bench)

    d = sub.add_parser("diff", help="every layer three ways: float model, int8 reference, generated C on the target")
    run_args(d, 1, 300.0, inputs)
    d.add_argument("--build-dir", help="keep the debug firmware build in this folder")
    d.add_argument("--json", action="store_true", help="machine-readable output")
    add_oracle_arguments(d)
    d.set_defaults(fn=cmd_diff)

    h = sub.add_parser("report", help="one self-contained HTML page: memory plan picture, per-layer MACs, "
                       "weights, errors and instructions, RAM/flash against the board")
    run_args(h, 4, 600.0, "samples for the per-layer quantization error (default: --calib, else random)")
    h.add_argument("--output", "-o", required=True, help="the HTML file to write")
    h.add_argument("--emulate", action="store_true", help="also run the debug build on the target and mark layers that differ")
    h.add_argument("--bench", action="store_true", help="also count instructions per layer in QEMU (tinyc bench)")
    h.set_defaults(fn=cmd_report)

    k = sub.add_parser("check", help="list every problem at once and the RAM/flash needed against the target")
    model_args(k)
    k.set_defaults(fn=cmd_check)

    t = sub.add_parser("targets", help="list targets")
    t.set_defaults(fn=cmd_targets)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except TinycError as e:
        print(f"tinyc: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into head & co.
        sys.stdout = open(os.devnull, "w")
        return EXIT_OK
    except KeyboardInterrupt:
        print("tinyc: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug in tinyc: one line unless asked for the traceback
        if os.environ.get("TINYC_TRACEBACK"):
            raise
        print(f"tinyc: internal error: {type(e).__name__}: {e} (set TINYC_TRACEBACK=1 for details)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
