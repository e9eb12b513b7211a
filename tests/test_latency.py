"""The estimated-latency model (tinyc/latency.py) against the instruction timings it is built from:
hand-written sequences whose cycle counts the Cortex-M4 and M3 Technical Reference Manuals give
(Table 3-1 and the load/store pipelining examples of 3.3.2), and the Cortex-M7 simplification
as documented there; then the per-block arithmetic of tinyc/traffic.py."""
from __future__ import annotations

import pytest

from tinyc.latency import CORTEX_M3, CORTEX_M4, CORTEX_M7, model_for, parse, sequence_cycles
from tinyc.targets import get_target
from tinyc.traffic import Block, Traffic

# (instructions as QEMU disassembles them, the last branch taken?, cycles the M4 TRM gives)
M4_TRM = [
    # 3.3.2: "LDR [any] are pipelined when possible": N neighbouring loads take N+1 cycles
    (["ldr r0, [r1]", "ldr r2, [r1, #4]"], False, 3),
    (["ldr r0, [r1]", "ldr r1, [r2]"], False, 3),  # "normally three cycles total"
    (["ldr r0, [r1, r2]", "str r0, [r3, #20]"], False, 3),  # "normally three cycles total"
    (["ldr r0, [r1, r2]", "str r1, [r3, r2]"], False, 3),  # "normally three cycles total"
    (["ldr r0, [r1, r5]", "ldr r1, [r2]", "ldr r2, [r3, #4]"], False, 4),  # "normally four cycles total"
    (["ldr r0, [r1]", "ldr r2, [r0]"], False, 4),  # the loaded register is the next address: no overlap
    (["str r0, [r1, #4]"], False, 1),  # "STR Rx,[Ry,#imm] is always one cycle"
    (["str r0, [r1, r2]"], False, 2),
    (["adds r1, #4", "ldr r0, [r1]"], False, 4),  # address from the previous data processing: +1 stall
    (["ldrd r0, r1, [r2]"], False, 3),  # LDRD: 1+N, N = 2
    (["ldr r0, [r1]", "ldrd r2, r3, [r4]"], False, 5),  # LDRD is never pipelined
    (["strd r0, r1, [r2, #8]"], False, 3),
    (["push.w {r4, r5, r6, r7, r8, sb, sl, fp, lr}"], False, 10),  # 1+N
    (["pop {r4, r5, pc}"], True, 6),  # 1+N+P, P = 2
    (["mul r0, r1, r2"], False, 1), (["mla r0, r1, r2, r3"], False, 1), (["mls r0, r1, r2, r3"], False, 1),
    (["smull r0, r1, r2, r3"], False, 1), (["smlal r0, r1, r2, r3"], False, 1),
    (["smlad r0, r1, r2, r0"], False, 1), (["smmulr r0, r1, r2"], False, 1), (["sxtab16 r0, r1, r2, ror #8"], False, 1),
    (["ssat r0, #8, r1"], False, 1), (["add.w r0, r1, r2, lsl #2"], False, 1), (["it ne"], False, 1),
    (["sdiv r0, r1, r2"], False, 12),  # 2 to 12 by the operands: the model takes 12 (documented)
    (["bne #0x100"], False, 1),  # not taken: 1
    (["bne #0x100"], True, 3),  # taken: 1+P, P = 2 (the TRM's P is 1 to 3)
    (["bl #0x200"], True, 3),
    (["tbb [pc, r0]"], True, 4),  # 2+P
    (["vadd.f32 s0, s1, s2"], False, 1), (["vmul.f32 s0, s1, s2"], False, 1), (["vmla.f32 s0, s1, s2"], False, 3),
    (["vdiv.f32 s0, s1, s2"], False, 14), (["vsqrt.f32 s0, s1"], False, 14), (["vldr s0, [r0, #4]"], False, 2),
    (["vpush {d8, d9}"], False, 5),  # 1+N, N = four single-precision registers
]


@pytest.mark.parametrize("lines,taken,cycles", M4_TRM, ids=["; ".join(c[0]) + (" (taken)" if c[1] else "") for c in M4_TRM])
def test_cortex_m4_sequences_match_the_trm(lines, taken, cycles):
    assert sequence_cycles(CORTEX_M4, lines, taken) == cycles


def test_cortex_m4_taken_branch_is_within_the_trms_range():
    # Branch: 1+P with P from 1 to 3; SDIV/UDIV: 2 to 12
    assert 2 <= sequence_cycles(CORTEX_M4, ["b #0x100"], True) <= 4
    assert 2 <= sequence_cycles(CORTEX_M4, ["udiv r0, r1, r2"]) <= 12


@pytest.mark.parametrize("lines,cycles", [
    (["mla r0, r1, r2, r3"], 2), (["mls r0, r1, r2, r3"], 2),  # M3 Table 3-1: MLA/MLS 2
    (["umull r0, r1, r2, r3"], 5), (["smlal r0, r1, r2, r3"], 7),  # 3-5 and 4-7: the worst case
    (["mul r0, r1, r2"], 1), (["ldr r0, [r1]", "ldr r2, [r1, #4]"], 3), (["ldrd r0, r1, [r2]"], 3),
])
def test_cortex_m3_differs_from_the_m4_only_in_multiplies(lines, cycles):
    assert sequence_cycles(CORTEX_M3, lines) == cycles


@pytest.mark.parametrize("lines,cycles", [
    (["add r0, r1, r2", "add r3, r4, r5"], 1),  # two independent ALU instructions: one cycle
    (["add r0, r1, r2", "add r3, r0, r5"], 2),  # the second reads the first's result
    (["ldr r0, [r1]", "add r3, r4, r5"], 1),  # a load pairs with an ALU instruction
    (["ldr r0, [r1]", "ldr r2, [r1, #4]"], 2),  # one memory instruction per cycle
    (["ldrd r0, r1, [r2]"], 1),  # 64-bit load path
    (["smlad r0, r1, r2, r0", "smlad r3, r4, r5, r3"], 2),  # one multiplier
    (["push {r4, r5, r6, lr}"], 2),  # two registers per cycle
    (["sdiv r0, r1, r2"], 12), (["vdiv.f32 s0, s1, s2"], 14),
    (["bne #0x100"], 1),
])
def test_cortex_m7_simplification(lines, cycles):
    assert sequence_cycles(CORTEX_M7, lines) == cycles
    assert sequence_cycles(CORTEX_M7, ["b #0x100"], True) == 2  # a taken branch: + 1


def test_parse_reads_capstone_syntax():
    i = parse("ldrd sl, fp, [r3, #0x38]")
    assert (i.kind, i.dests, i.address) == ("load_double", ("r10", "r11"), ("r3",))
    i = parse("pop.w {r4, r5, r6, r7, r8, sb, sl, fp, pc}")
    assert i.kind == "load_multiple" and i.words == 9 and i.control
    assert parse("str r3, [r2, r1, lsl #2]").register_offset and not parse("strb.w r3, [fp, #-4]").register_offset
    assert parse("bic r2, r2, #3").kind == "alu" and parse("bics r2, r3").kind == "alu"  # not a branch
    assert parse("bhs #0x2052").kind == "branch" and parse("cbnz r0, #0x10").kind == "branch"
    assert parse("smlabb r0, r1, r2, r3").kind == "dsp_multiply" and parse("umull r0, r1, r2, r3").kind == "mull"


def test_cores_without_a_model_get_no_estimate():
    assert model_for("cortex-m4") is CORTEX_M4 and model_for("cortex-m7") is CORTEX_M7
    for name in ("cortex-m55", "cortex-m33", "cortex-m0plus", "esp32c3"):
        assert model_for(get_target(name).emulator.cpu) is None


def test_block_arithmetic_and_the_keys():
    """A block of 2 loads and a conditional branch run 10 times, 9 of them taken: 10 x (3 + 1) + 9 x P
    core cycles; 7 flash line reads at 5 wait states; 168 MHz."""
    t = Traffic()
    b = Block(0x100, 3, 10, 9, 64, 0, 40, 8, 2, 0, 7, ["ldr r0, [r1]", "ldr r2, [r1, #4]", "bne #0x100"])
    t.add_block(b, CORTEX_M4)
    m4 = get_target("cortex-m4")
    keys = t.keys(m4, CORTEX_M4)
    assert t.instructions == 30
    assert keys["flash_wait_cycles"] == 35 and keys["estimated_cycles"] == 10 * 4 + 9 * 2 + 35
    assert keys["estimated_latency_us"] == round((10 * 4 + 9 * 2 + 35) / 168e6 * 1e6, 2)
    assert (keys["flash_read_bytes"], keys["sram_read_bytes"], keys["sram_write_bytes"], keys["other_access_bytes"]) == (64, 40, 8, 2)
    none = t.keys(get_target("cortex-m55"), None)
    assert none["estimated_cycles"] is None and none["estimated_latency_us"] is None and none["flash_read_bytes"] == 64
