"""Compiling generated C with a target's compiler into an object (for sizes and checks), one way
for every target: gcc-style cross compilers directly, Xtensa through clang-22 (LLVM IR) and llc-22."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .errors import TinycError
from .targets import Target

# -Wconversion (in C it includes -Wsign-conversion and -Wfloat-conversion): every narrowing (int32 to
# int8, int64 to int32, double to float) and sign change in generated code is an explicit cast.
STRICT_CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Wconversion", "-Werror")


def need_tool(tool: str, target: Target) -> str:
    path = shutil.which(tool)
    if path is None:
        hint = target.install_hint()
        raise TinycError(f"{tool} not found (needed for target {target.name})" + (f"; install it with: {hint}" if hint else ""))
    return path


def have_tools(target: Target) -> bool:
    return shutil.which(target.cc) is not None and (not target.llc or shutil.which(target.llc[0]) is not None)


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        lines = r.stderr.strip().splitlines() or ["(no output)"]
        raise TinycError(f"{what} failed: {lines[0]}" + (f" (+{len(lines) - 1} more lines)" if len(lines) > 1 else ""))


def compile_object(directory: Path, source: str, target: Target, extra: tuple[str, ...] = ()) -> Path:
    """``directory/source`` -> ``directory/<stem>.o`` with the target's flags and tinyc's warning
    flags (warnings are errors). ``extra`` adds flags (e.g. -fstack-usage)."""
    cc = need_tool(target.cc, target)
    stem = Path(source).stem
    obj = directory / f"{stem}.o"
    if target.llc:
        llc = need_tool(target.llc[0], target)
        _run([cc, *target.cflags, *STRICT_CFLAGS, *extra, "-I.", "-S", "-emit-llvm", source, "-o", f"{stem}.ll"],
             directory, f"compiling {source} for {target.name}")
        _run([llc, *target.llc[1:], f"{stem}.ll", "-o", obj.name], directory, f"llc for {target.name}")
    else:
        _run([cc, *target.cflags, *STRICT_CFLAGS, *extra, "-I.", "-c", source, "-o", obj.name],
             directory, f"compiling {source} for {target.name}")
    return obj


def stack_usage(directory: Path, stem: str) -> dict[str, int]:
    """Function -> bytes of stack from the compiler's .su file (-fstack-usage)."""
    su = directory / f"{stem}.su"
    out: dict[str, int] = {}
    if su.exists():
        for line in su.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[1].strip().isdigit():
                out[parts[0].rsplit(":", 1)[-1]] = int(parts[1])
    return out
