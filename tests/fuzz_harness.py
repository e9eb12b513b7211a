"""The fuzzing harness shared by tests/fuzz_onnx.py and tests/fuzz_tflite.py: a case's files,
running one case in-process with every rule checked, child processes under a memory cap with a
watchdog, the summary, and the command line.

A fuzzer is a module with MODULE (its name for ``python -m``), MODEL_FILE (the model's file name
in a case), ``make_case(seed, index) -> Case`` and optionally ``entry(argv) -> exit code`` (what
runs a case; tinyc.cli.main when absent) and ``checker_rejects(data) -> str`` (why the format's own checker rejects a model that
tinyc compiled: noted, not a failure).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MEMORY_CAP = 3 * 2**30  # RLIMIT_AS of a fuzz child
CASE_SECONDS = 20  # SIGALRM per case
WATCHDOG_SLACK = 25  # the parent kills a child whose case runs this much longer than CASE_SECONDS


# --------------------------------------------------------------------------------------------
# A case: the files of one fuzz input
# --------------------------------------------------------------------------------------------

OUTSIDE_BYTES = b"OUTSIDE-THE-MODEL-FOLDER" * 8  # canary beside the model's folder


@dataclass
class Case:
    seed: int
    index: int
    base: str  # seed model
    mutations: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # beside the model (MODEL_FILE is the model)
    outside: dict[str, bytes] = field(default_factory=lambda: {"outside.bin": OUTSIDE_BYTES})  # in the case folder
    symlinks: dict[str, str] = field(default_factory=dict)  # link beside the model -> target
    sparse: dict[str, int] = field(default_factory=dict)  # sparse file beside the model -> size
    must_refuse: str = ""  # why this case may not compile (e.g. reads data outside the folder)

    @property
    def label(self) -> str:
        return f"seed {self.seed} case {self.index} ({self.base}: {'; '.join(self.mutations) or 'unchanged'})"

    def write(self, case_dir: Path) -> Path:
        """Lay the case out: case_dir/model/<files>, case_dir/<outside files>. Returns the model folder."""
        model_dir = case_dir / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        for name, data in self.outside.items():
            (case_dir / name).write_bytes(data)
        for name, data in self.files.items():
            (model_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (model_dir / name).write_bytes(data)
        for name, size in self.sparse.items():
            with open(model_dir / name, "wb") as f:
                f.truncate(size)
        for name, target in self.symlinks.items():
            os.symlink(target, model_dir / name)
        return model_dir

    def describe(self) -> dict:
        return dict(seed=self.seed, index=self.index, base=self.base, mutations=self.mutations,
                    must_refuse=self.must_refuse, symlinks=self.symlinks, sparse=self.sparse)


# --------------------------------------------------------------------------------------------
# Byte-level mutations of a serialized model (any format)
# --------------------------------------------------------------------------------------------

def bytes_mutate(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    b = bytearray(data)
    how = rng.choice(["flip", "flip", "overwrite", "insert", "delete", "truncate", "duplicate", "varint", "append"])
    if not b:
        return bytes(rng.randbytes(rng.randint(1, 16))), "random bytes"
    pos = rng.randrange(len(b))
    if how == "flip":
        k = rng.randint(1, 8)
        for _ in range(k):
            p = rng.randrange(len(b))
            b[p] ^= 1 << rng.randrange(8)
        return bytes(b), f"{k} bit flips"
    if how == "overwrite":
        n = rng.randint(1, 8)
        b[pos:pos + n] = rng.randbytes(n)
    elif how == "insert":
        b[pos:pos] = rng.randbytes(rng.randint(1, 16))
    elif how == "delete":
        del b[pos:pos + rng.randint(1, 32)]
    elif how == "truncate":
        del b[pos:]
    elif how == "duplicate":
        n = rng.randint(1, 64)
        b[pos:pos] = b[pos:pos + n]
    elif how == "varint":
        b[pos:pos + 1] = rng.choice([b"\xff" * 9 + b"\x01", b"\x80" * 10, b"\xff\xff\xff\xff\x0f", b"\x00"])
    else:
        b += rng.randbytes(rng.randint(1, 32))
    return bytes(b), f"bytes {how} at {pos}"


# --------------------------------------------------------------------------------------------
# Running a case (in a fuzz child)
# --------------------------------------------------------------------------------------------

class CaseTimeout(BaseException):
    """Raised by SIGALRM; a BaseException so that no `except Exception` in tinyc swallows it."""


def _on_alarm(signum, frame):
    raise CaseTimeout()


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under folder (not following symlinks) -> a digest of its content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = Path(dirpath) / name
            rel = str(p.relative_to(folder))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.stat().st_size > 2**24:
                out[rel] = f"size {p.stat().st_size}"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_case(fuzzer, case: Case, case_dir: Path, seconds: int = CASE_SECONDS) -> dict:
    """Compile the case in-process with case_dir as the working folder (``fuzzer.entry``, or
    tinyc.cli.main); returns the outcome: ``compiled``, ``refused``
    or ``fail`` (with ``problem``)."""
    if hasattr(fuzzer, "entry"):
        main = fuzzer.entry
    else:
        from tinyc.cli import main

    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    case.write(case_dir)
    tmp = case_dir / "tmp"
    tmp.mkdir()
    before = _snapshot(case_dir)
    out, err = io.StringIO(), io.StringIO()
    argv = ["compile", f"model/{fuzzer.MODEL_FILE}", "-t", "host", "-o", "out"]
    old_cwd, old_tmp = os.getcwd(), tempfile.tempdir
    problem, rc = "", None
    t0 = time.monotonic()
    os.chdir(case_dir)
    tempfile.tempdir = str(tmp)
    old_handler = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(seconds)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("always")  # every warning shows (not only the first of the run)
            rc = main(argv)
    except CaseTimeout:
        problem = f"hang: no result within {seconds} s"
    except MemoryError:
        problem = "MemoryError escaped main"
    except SystemExit as e:
        problem = f"SystemExit({e.code}) escaped main"
    except BaseException as e:  # noqa: BLE001 - anything escaping main is a failure
        problem = f"exception escaped main: {type(e).__name__}: {str(e)[:300]}"
        import traceback

        err.write(traceback.format_exc())
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old_handler)
        os.chdir(old_cwd)
        tempfile.tempdir = old_tmp
    seconds_taken = time.monotonic() - t0
    stderr = err.getvalue()
    lines = stderr.splitlines()
    if not problem:
        if rc not in (0, 2):
            problem = f"exit code {rc}"
        elif "Traceback" in stderr:
            problem = "traceback on stderr"
        elif rc == 2 and (len(lines) != 1 or not lines[0].startswith("tinyc: error: ")):
            problem = f"exit 2 with {len(lines)} stderr line(s) instead of one 'tinyc: error: ...'"
        elif rc == 0 and stderr.strip():
            problem = f"compiled with {len(lines)} line(s) on stderr"
        elif rc == 0 and case.must_refuse:
            problem = f"compiled although it must be refused: {case.must_refuse}"
    # files: nothing new outside out/, nothing changed beside the model or outside it
    after = _snapshot(case_dir)
    for rel, digest in sorted(after.items()):
        if rel.startswith("out" + os.sep):
            continue
        if rel not in before:
            problem = problem or f"stray file written: {rel}"
        elif before[rel] != digest:
            problem = problem or f"file changed: {rel}"
    for rel in before:
        if rel not in after:
            problem = problem or f"file removed: {rel}"
    if rc == 0 and not problem and not (case_dir / "out" / "report.json").is_file():
        problem = "exit 0 without report.json"
    outcome = "fail" if problem else {0: "compiled", 2: "refused"}[rc]
    res = dict(index=case.index, outcome=outcome, rc=rc, seconds=round(seconds_taken, 3),
               message=(lines[0] if lines else "")[:300], mutations=case.mutations, base=case.base)
    if outcome == "compiled" and case.mutations and hasattr(fuzzer, "checker_rejects"):
        why = fuzzer.checker_rejects(case.files[fuzzer.MODEL_FILE])
        if why:  # not a failure (tinyc may accept more than the format's strict checks), but worth a look
            res["checker_rejects"] = why[:300]
    if problem:
        res["problem"] = problem
        res["stderr"] = stderr[-4000:]
    shutil.rmtree(case_dir, ignore_errors=True)
    return res


def _child(fuzzer, seed: int, start: int, stop: int, work: Path, results: Path, seconds: int, memory: int) -> None:
    """Run cases start..stop-1, appending one JSON line before and after each to ``results``."""
    import resource

    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    os.environ.pop("TINYC_TRACEBACK", None)
    import tinyc.cli  # noqa: F401  (imports before the first case's clock starts)
    import tinyc.codegen  # noqa: F401
    import tinyc.compiler  # noqa: F401

    with open(results, "a", buffering=1) as f:
        for i in range(start, stop):
            f.write(json.dumps({"index": i, "start": True}) + "\n")
            f.flush()
            try:
                case = fuzzer.make_case(seed, i)
                res = run_case(fuzzer, case, work / f"case{i}", seconds)
            except BaseException as e:  # noqa: BLE001 - a bug in the harness, reported as a failure
                res = dict(index=i, outcome="fail", problem=f"harness error: {type(e).__name__}: {e}", mutations=[])
            f.write(json.dumps(res) + "\n")
            f.flush()


# --------------------------------------------------------------------------------------------
# The runner (parent): child processes, watchdog, summary
# --------------------------------------------------------------------------------------------

def _spawn(fuzzer, seed, start, stop, work, results, seconds, memory):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("TINYC_TRACEBACK", None)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    cmd = [sys.executable, "-m", fuzzer.MODULE, "--child", "--seed", str(seed), "--start", str(start),
           "--stop", str(stop), "--work", str(work), "--results", str(results), "--seconds", str(seconds),
           "--memory", str(memory)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


class _Worker:
    def __init__(self, fuzzer, n, seed, start, stop, work, seconds, memory):
        self.fuzzer, self.n, self.seed, self.stop, self.seconds, self.memory = fuzzer, n, seed, stop, seconds, memory
        self.work = work / f"worker{n}"
        self.work.mkdir(parents=True, exist_ok=True)
        self.results = work / f"worker{n}.jsonl"
        self.pos = 0  # bytes of results read
        self.done: dict[int, dict] = {}
        self.current: int | None = None
        self.current_since = time.monotonic()
        self.next = start
        self.proc = None
        self._launch()

    def _launch(self):
        self.current, self.current_since = None, time.monotonic()
        self.proc = _spawn(self.fuzzer, self.seed, self.next, self.stop, self.work, self.results, self.seconds, self.memory) \
            if self.next < self.stop else None

    def _read(self):
        if not self.results.exists():
            return
        with open(self.results) as f:
            f.seek(self.pos)
            while True:
                line = f.readline()
                if not line.endswith("\n"):
                    break
                self.pos += len(line.encode())
                r = json.loads(line)
                if r.get("start"):
                    self.current, self.current_since = r["index"], time.monotonic()
                else:
                    self.done[r["index"]] = r
                    self.current = None
                    self.next = r["index"] + 1

    def poll(self) -> bool:
        """True while running."""
        if self.proc is None:
            return False
        self._read()
        code = self.proc.poll()
        if code is None:
            if self.current is not None and time.monotonic() - self.current_since > self.seconds + WATCHDOG_SLACK:
                self._kill()
                self._lost(f"hang: killed by the watchdog after {self.seconds + WATCHDOG_SLACK} s (stuck outside Python)")
            return True
        self._read()
        if self.next < self.stop:  # the child died during a case (or before starting one)
            err = self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.stderr else ""
            self._lost(f"child process died with code {code} (crash or out of memory)", err)
            return self.proc is not None
        self.proc = None
        return False

    def _kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def _lost(self, problem, stderr=""):
        i = self.current if self.current is not None else self.next
        self.done[i] = dict(index=i, outcome="fail", problem=problem, stderr=stderr,
                            mutations=self.fuzzer.make_case(self.seed, i).mutations)
        self.next = i + 1
        self._launch()


def run_fuzz(fuzzer, cases: int, seed: int, out: Path, jobs: int = 2, seconds: int = CASE_SECONDS,
             memory: int = MEMORY_CAP, start: int = 0) -> dict:
    """Run cases start..start+cases-1 of ``seed`` in ``jobs`` child processes; write
    OUT/summary.json and the failing cases under OUT/failures/; return the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fuzz-work-", dir=out))
    t0 = time.monotonic()
    jobs = max(1, min(jobs, cases))
    bounds = [start + cases * k // jobs for k in range(jobs + 1)]
    workers = [_Worker(fuzzer, k, seed, bounds[k], bounds[k + 1], work, seconds, memory) for k in range(jobs)]
    try:
        while any([w.poll() for w in workers]):
            time.sleep(0.2)
    finally:
        for w in workers:
            if w.proc is not None and w.proc.poll() is None:
                w._kill()
    results = {}
    for w in workers:
        results.update(w.done)
    elapsed = time.monotonic() - t0
    failures = [r for _, r in sorted(results.items()) if r["outcome"] == "fail"]
    for r in failures:
        save_case(fuzzer.make_case(seed, r["index"]), out / "failures" / f"seed{seed}-case{r['index']}", r)
    messages: dict[str, int] = {}
    for r in results.values():
        if r["outcome"] == "refused":
            key = r["message"].removeprefix("tinyc: error: ")[:40]
            messages[key] = messages.get(key, 0) + 1
    summary = dict(
        seed=seed, start=start, requested=cases, cases=len(results),
        compiled=sum(r["outcome"] == "compiled" for r in results.values()),
        refused=sum(r["outcome"] == "refused" for r in results.values()),
        failures=[dict(seed=seed, index=r["index"], problem=r["problem"], mutations=r.get("mutations", []),
                       message=r.get("message", ""), stderr=r.get("stderr", "")[-1000:]) for r in failures],
        seconds=round(elapsed, 1), jobs=jobs,
        slowest=sorted(([r["seconds"], r["index"]] for r in results.values() if "seconds" in r), reverse=True)[:5],
        top_refusals=sorted(messages.items(), key=lambda kv: -kv[1])[:25],
        compiled_but_checker_rejects=[dict(index=r["index"], mutations=r["mutations"], checker=r["checker_rejects"])
                                      for _, r in sorted(results.items()) if r.get("checker_rejects")],
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with open(out / "results.jsonl", "w") as f:  # every case's outcome and first stderr line
        for _, r in sorted(results.items()):
            f.write(json.dumps(r) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return summary


def runners(name: str):
    """``run_case(case, case_dir, seconds)`` and ``run_fuzz(cases, seed, out, ...)`` of the fuzzer
    module ``name`` (looked up when called: the module may still be loading)."""
    def case(case: Case, case_dir: Path, seconds: int = CASE_SECONDS) -> dict:
        return run_case(sys.modules[name], case, case_dir, seconds)

    def fuzz(cases: int, seed: int, out: Path, jobs: int = 2, seconds: int = CASE_SECONDS, memory: int = MEMORY_CAP,
             start: int = 0) -> dict:
        return run_fuzz(sys.modules[name], cases, seed, out, jobs, seconds, memory, start)

    return case, fuzz


def failure_report(summary: dict) -> str:
    """One line per failing case of a run_fuzz summary."""
    return "\n".join(f"case {f['index']} (seed {f['seed']}): {f['problem']} | {'; '.join(f['mutations'])} | "
                     f"{f['message'] or f['stderr'][-300:]}" for f in summary["failures"])


def save_case(case: Case, folder: Path, result: dict | None = None) -> None:
    """The case's files (model/ and what lies outside it) and case.json, to look at or to add to the corpus."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    case.write(folder)
    info = case.describe()
    if result is not None:
        info["result"] = result
    (folder / "case.json").write_text(json.dumps(info, indent=2) + "\n")


def main(fuzzer, argv: list[str] | None = None) -> int:
    """The command line of a fuzzer module (see tests/fuzz_onnx.py's docstring)."""
    p = argparse.ArgumentParser(prog=f"python -m {fuzzer.MODULE}", description=fuzzer.__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--out", default="fuzz-out")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--seconds", type=int, default=CASE_SECONDS)
    p.add_argument("--memory", type=int, default=MEMORY_CAP)
    p.add_argument("--case", type=int, help="one case: run it here (or with --save, write its files)")
    p.add_argument("--save", help="with --case: the folder to write the case to")
    p.add_argument("--traceback", action="store_true", help="with --case: let tinyc's exceptions through (TINYC_TRACEBACK)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--stop", type=int, help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--results", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        _child(fuzzer, a.seed, a.start, a.stop, Path(a.work), Path(a.results), a.seconds, a.memory)
        return 0
    if a.case is not None:
        case = fuzzer.make_case(a.seed, a.case)
        if a.save:
            save_case(case, Path(a.save))
            print(f"wrote {case.label} to {a.save}")
            return 0
        if a.traceback:
            os.environ["TINYC_TRACEBACK"] = "1"
        with tempfile.TemporaryDirectory() as tmp:
            res = run_case(fuzzer, case, Path(tmp) / "case", a.seconds)
        if res.get("stderr"):
            print(res.pop("stderr"))
        print(case.label)
        print(json.dumps(res, indent=2))
        return 0 if res["outcome"] != "fail" else 1
    s = run_fuzz(fuzzer, a.cases, a.seed, Path(a.out), a.jobs, a.seconds, a.memory, a.start)
    print(json.dumps({k: v for k, v in s.items() if k != "failures"}, indent=2))
    for f in s["failures"]:
        print(f"FAIL case {f['index']}: {f['problem']} | {'; '.join(f['mutations'])} | {f['message'][:200]}")
    print(f"{s['cases']} cases in {s['seconds']} s: {s['compiled']} compiled, {s['refused']} refused, "
          f"{len(s['failures'])} failures (out: {a.out})")
    return 1 if s["failures"] else 0

