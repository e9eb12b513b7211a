"""The ESTIMATED latency of `tinyc bench`: core cycles from a per-instruction-class model of the core
plus flash wait states, divided by the reference board's clock.

The instructions come from QEMU (each executed block's disassembly, its executions and how often its
last instruction's branch was taken, from templates/bench/insn_count.c). A core's model is a table
of cycles per instruction class (data below, with its source) and a few pipeline rules from the
same manual. Cores without a table get no estimate (None), never a made-up number. What the model
ignores (caches, bus contention, interrupts, the flash accelerator's caches, write buffers, ...) is
in README.md, "Memory traffic and estimated latency"."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

# -- instruction classes (from QEMU's disassembly: capstone's syntax, "ldr r0, [r1, #4]") ----------

CONDITIONS = ("eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al")
BRANCHES = {"b", "bl", "bx", "blx", "cbz", "cbnz"} | {"b" + c for c in CONDITIONS}
NO_DEST = {"cmp", "cmn", "tst", "teq", "nop", "bkpt", "dsb", "dmb", "isb", "pld", "pli", "svc", "wfi", "wfe", "sev"}
MULTIPLY = (("mul", ("mul",)), ("mla", ("mla", "mls")), ("mull", ("smull", "umull")),
            ("mlal", ("smlal", "umlal", "umaal")))
DSP_MULTIPLY = ("smla", "smul", "smmul", "smmla", "smmls", "smuad", "smusd", "smlsd", "smlal")
VMAC = ("vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma", "vfnms")
REGISTER = re.compile(r"\b(r1[0-5]|r[0-9]|sb|sl|fp|ip|sp|lr|pc|[sd]\d+)\b")
ALIASES = {"sb": "r9", "sl": "r10", "fp": "r11", "ip": "r12", "sp": "r13", "lr": "r14", "pc": "r15"}


@dataclass(frozen=True)
class Insn:
    """One instruction as the model sees it."""

    mnemonic: str  # without .w/.n and without the VFP data type
    kind: str  # the class: a key of CoreModel.cycles
    dests: tuple[str, ...]  # registers written (the loaded ones for loads)
    address: tuple[str, ...]  # registers in the address of a load or store
    sources: tuple[str, ...]  # every register read
    words: int = 1  # registers moved by LDM/STM/PUSH/POP/VLDM/VSTM (single-precision words)
    control: bool = False  # changes the flow (a branch, or writes the PC)
    register_offset: bool = False  # a store/load with a register in the offset


def _regs(text: str) -> list[str]:
    return [ALIASES.get(r, r) for r in REGISTER.findall(text)]


def _kind(m: str) -> str:
    if m in BRANCHES or m in ("tbb", "tbh"):
        return "table_branch" if m in ("tbb", "tbh") else "branch"
    if m in ("ldrd", "strd"):
        return "load_double" if m == "ldrd" else "store_double"
    if m.startswith("ldm") or m == "pop":
        return "load_multiple"
    if m.startswith("stm") or m == "push":
        return "store_multiple"
    if m.startswith("vldm") or m == "vpop":
        return "vload_multiple"
    if m.startswith("vstm") or m == "vpush":
        return "vstore_multiple"
    if m.startswith("ldr"):
        return "load"
    if m.startswith("str"):
        return "store"
    if m in ("vldr", "vstr"):
        return "vload" if m == "vldr" else "vstore"
    for kind, names in MULTIPLY:
        if m in names or m.rstrip("s") in names:
            return kind
    if m.startswith(DSP_MULTIPLY):
        return "mlal" if m.startswith(("smlal", "smlsld")) else "dsp_multiply"
    if m in ("sdiv", "udiv"):
        return "divide"
    if m in ("vdiv", "vsqrt"):
        return "vdivide"
    if m.startswith(VMAC):
        return "vmac"
    if m.startswith("v"):
        return "vfp"
    return "alu"  # data processing, moves, shifts, extends, saturation, bit fields, IT, hints, barriers


def parse(disas: str) -> Insn:
    """One line of QEMU's disassembly, e.g. 'ldr r0, [r1, #4]' or 'vmla.f32 s0, s1, s2'."""
    mnemonic, _, operands = disas.strip().partition(" ")
    m = mnemonic.lower().split(".")[0]
    kind = _kind(m)
    regs = _regs(operands)
    address: list[str] = []
    register_offset = False
    if "[" in operands:
        inside = operands[operands.index("["):operands.index("]") + 1]
        address = _regs(inside)
        register_offset = len(address) > 1
    words = 1
    if "{" in operands:
        listed = _regs(operands[operands.index("{"):])
        words = sum(2 if r.startswith("d") else 1 for r in listed)
    if kind in ("load", "load_double", "vload"):
        dests = [r for r in _regs(operands.split("[")[0])]
    elif kind in ("load_multiple", "vload_multiple"):
        dests = _regs(operands[operands.index("{"):]) if "{" in operands else []
    elif kind in ("mull", "mlal"):
        dests = regs[:2]
    elif kind in ("store", "store_double", "vstore", "store_multiple", "vstore_multiple", "branch", "table_branch") \
            or m in NO_DEST or m.startswith("it"):
        dests = []
    else:
        dests = regs[:1]
    control = kind in ("branch", "table_branch") or "r15" in dests
    if kind in ("load", "load_double", "vload", "load_multiple", "vload_multiple"):
        sources = address or [r for r in regs if r not in dests]  # LDM/POP: the base (POP: sp, implicit)
    elif kind == "mlal" or not dests or len(regs) == 1:
        sources = regs  # accumulating into the destinations, stores, compares, 'adds r1, #4'
    else:
        sources = regs[len(dests):]
    return Insn(m, kind, tuple(dests), tuple(address), tuple(sources), words, control, register_offset)


# -- the cores' models (data) -------------------------------------------------------------------------


@dataclass(frozen=True)
class CoreModel:
    """Cycles per instruction class; ``per_word`` classes cost ``cycles + words`` (1+N)."""

    name: str
    source: str
    cycles: dict[str, float]
    refill: int  # P: cycles to refill the pipeline after a taken branch (or a write to the PC)
    per_word: tuple[str, ...] = ("load_multiple", "store_multiple", "vload_multiple", "vstore_multiple")
    word_cycles: float = 1.0  # cycles per register of a load/store multiple
    pipelined_loads: bool = False  # Cortex-M3/M4: neighbouring LDR/STR overlap (N loads: N+1 cycles)
    address_stall: bool = False  # Cortex-M3/M4: an address computed by the previous instruction: +1
    dual_issue: bool = False  # Cortex-M7: pairs of neighbouring single-cycle instructions issue together
    notes: str = ""


# Cortex-M4 Technical Reference Manual (Arm DDI 0439), 3.3.1 "Table of processor instructions"
# (cycles at zero wait states), 3.3.2 "Load/store timings", and the FPU's table (7.2.3).
CORTEX_M4 = CoreModel(
    name="Cortex-M4",
    source="Cortex-M4 TRM (DDI 0439) Table 3-1, 3.3.2 load/store timings, FPU instruction table",
    cycles=dict(
        alu=1,  # data processing, shifts, extends, SSAT/USAT, bit fields, packing, SIMD add/sub, IT, MOVW/MOVT
        mul=1, mla=1, mull=1, mlal=1, dsp_multiply=1,  # MUL, MLA/MLS, SMULL/UMULL, SMLAL/UMLAL, SMLAD, SMMUL ...
        divide=12,  # SDIV/UDIV: 2 to 12 by the operands (early termination); the model takes the worst case
        load=2, store=2,  # LDR/STR 2 (pipelined: see the rules); STR with an immediate offset: store_imm
        store_imm=1,  # "STR Rx,[Ry,#imm] is always one cycle" (3.3.2)
        load_double=3, store_double=3,  # LDRD/STRD: 1+N with N = 2, never pipelined
        load_multiple=1, store_multiple=1, vload_multiple=1, vstore_multiple=1,  # 1+N (N registers)
        branch=1,  # B/BL/BX/BLX/CBZ/CBNZ: 1, +P when taken
        table_branch=2,  # TBB/TBH: 2+P
        vfp=1,  # VADD/VSUB/VMUL/VABS/VNEG/VCVT/VCMP/VMOV/VMRS
        vmac=3,  # VMLA/VMLS/VNMLA/VNMLS/VFMA/VFMS/...
        vdivide=14,  # VDIV/VSQRT
        vload=2, vstore=2,  # VLDR/VSTR
    ),
    refill=2,  # P is 1 to 3 (alignment and width of the target, early speculation): the middle
    pipelined_loads=True,
    address_stall=True,
)

# Cortex-M3 TRM (Arm DDI 0337) Table 3-1: as the M4, but MLA/MLS 2, SMULL/UMULL 3-5, SMLAL/UMLAL
# 4-7 (early termination: the worst case) and no DSP or FPU instructions.
CORTEX_M3 = CoreModel(
    name="Cortex-M3",
    source="Cortex-M3 TRM (DDI 0337) Table 3-1 and 3.3.2",
    cycles=dict(CORTEX_M4.cycles, mla=2, mull=5, mlal=7),
    refill=2,
    pipelined_loads=True,
    address_stall=True,
)

# Cortex-M7: Arm publishes no per-instruction timing. The model is a simplification of its
# dual-issue, in-order pipeline: every instruction issues in one cycle (loads and stores
# included: 64-bit paths, so LDRD/STRD and two registers of LDM/STM per cycle), except divides
# and VDIV/VSQRT (as the M4's) and multi-word transfers; two neighbouring single-cycle instructions
# issue together unless both access memory, both multiply, the first is a branch, or the second
# reads a register the first writes (no forwarding modelled); a taken branch adds 1 (a branch
# predicted by the branch target cache; mispredictions are not modelled).
CORTEX_M7 = CoreModel(
    name="Cortex-M7",
    source="simplified dual-issue model (Arm publishes no Cortex-M7 instruction timings)",
    cycles=dict(alu=1, mul=1, mla=1, mull=1, mlal=1, dsp_multiply=1, divide=12, load=1, store=1, store_imm=1,
                load_double=1, store_double=1, load_multiple=0, store_multiple=0, vload_multiple=0,
                vstore_multiple=0, branch=1, table_branch=2, vfp=1, vmac=1, vdivide=14, vload=1, vstore=1),
    refill=1,
    word_cycles=0.5,
    dual_issue=True,
)

MODELS = {"cortex-m4": CORTEX_M4, "cortex-m3": CORTEX_M3, "cortex-m7": CORTEX_M7}  # by the target's cpu


def model_for(cpu: str) -> CoreModel | None:
    return MODELS.get(cpu)


MEMORY = ("load", "store", "load_double", "store_double", "load_multiple", "store_multiple", "vload",
          "vstore", "vload_multiple", "vstore_multiple", "table_branch")
MULTIPLIES = ("mul", "mla", "mull", "mlal", "dsp_multiply", "vmac")


def _cost(model: CoreModel, insn: Insn, prev: Insn | None) -> float:
    c = model.cycles[insn.kind]
    if insn.kind in model.per_word:
        c += math.ceil(model.word_cycles * insn.words)
    if insn.kind == "store" and not insn.register_offset:
        c = model.cycles["store_imm"]
    if model.pipelined_loads and prev is not None and insn.kind in ("load", "store") and prev.kind == "load" \
            and not prev.control and not set(prev.dests) & set(insn.address):
        c = 1  # "LDR [any] are pipelined when possible": one cycle less than alone
    if model.address_stall and prev is not None and insn.kind in MEMORY and prev.kind not in MEMORY \
            and set(prev.dests) & set(insn.address):
        c += 1  # "an address dependent on the result of a preceding data processing operation"
    return c


def _pairs(model: CoreModel, a: Insn, b: Insn) -> bool:
    """Cortex-M7 simplification: may ``a`` and the next instruction ``b`` issue in one cycle?"""
    if model.cycles[a.kind] != 1 or model.cycles[b.kind] != 1 or a.kind in model.per_word or b.kind in model.per_word:
        return False
    if a.control or (a.kind in MEMORY and b.kind in MEMORY) or (a.kind in MULTIPLIES and b.kind in MULTIPLIES):
        return False
    return not set(a.dests) & set(b.sources + b.address)


@dataclass
class BlockCost:
    cycles: float  # per execution, the last instruction's branch not taken
    control: bool  # the last instruction changes the flow: each taken exit adds the refill


def block_cost(model: CoreModel, insns: Sequence[Insn]) -> BlockCost:
    """Cycles of one straight-line run of ``insns`` (a translated block), the branch at its end not
    taken; the caller adds ``model.refill`` per taken exit. Rules between neighbours apply within
    the block only (the block's first instruction is costed alone)."""
    total, prev, i = 0.0, None, 0
    while i < len(insns):
        insn = insns[i]
        if model.dual_issue and i + 1 < len(insns) and _pairs(model, insn, insns[i + 1]):
            total += 1
            prev, i = insns[i + 1], i + 2
            continue
        total += _cost(model, insn, prev)
        prev, i = insn, i + 1
    return BlockCost(total, bool(insns) and insns[-1].control)


def sequence_cycles(model: CoreModel, lines: Iterable[str], taken: bool = False) -> float:
    """Cycles of a hand-written instruction sequence (its last branch ``taken`` or not): the unit
    the tests check against the manuals' published timings."""
    cost = block_cost(model, [parse(line) for line in lines])
    return cost.cycles + (model.refill if taken and cost.control else 0)
