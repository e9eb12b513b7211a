"""Keywords of tinyc's Renode test (the .robot beside this file): a firmware line
"tinyc-output <sample> <hex>" against the expected outputs, integers exactly, floats within a
tolerance relative to the largest expected value. Standard library only: it runs in the Python
that runs renode-test."""
import math
import struct

def _values(fmt, text):
    raw = bytes.fromhex(text)
    return struct.unpack("<%d%s" % (len(raw) // struct.calcsize(fmt), fmt), raw)


def _check(name, fmt, got, want, rtol):
    if len(got) != len(want):
        return "%s: %d values, expected %d" % (name, len(got), len(want))
    if fmt not in "efd":
        bad = [k for k, (g, w) in enumerate(zip(got, want)) if g != w]
        return "%s: %d of %d values differ (first at %d: %s, expected %s)" % (
            name, len(bad), len(want), bad[0], got[bad[0]], want[bad[0]]) if bad else None
    if any(math.isfinite(g) != math.isfinite(w) for g, w in zip(got, want)):
        return "%s: non-finite values where the reference has none (or the reverse)" % name
    scale = max([abs(w) for w in want if math.isfinite(w)] + [0.0]) or 1.0
    diffs = [abs(g - w) if math.isfinite(w) else 0.0 for g, w in zip(got, want)]
    worst = max(diffs + [0.0])
    return "%s: max abs error %.3g, more than %s x %.3g" % (name, worst, rtol, scale) if worst > float(rtol) * scale else None


def output_line_should_match(line, sample, rtol, *outputs):
    """``outputs``: one ``name:format:hex`` per output of the model, in the firmware's order
    (format: the struct module's letter for one value)."""
    prefix = "tinyc-output %s " % sample
    if not line.startswith(prefix):
        raise AssertionError("sample %s: the firmware ended before printing its outputs: %s" % (sample, line.strip()))
    got = line[len(prefix):].strip()
    problems, pos = [], 0
    for spec in outputs:
        name, fmt, want = spec.rsplit(":", 2)
        n = len(want)
        problems.append(_check("output '%s'" % name, fmt, _values(fmt, got[pos:pos + n]), _values(fmt, want), rtol))
        pos += n
    if pos != len(got):
        problems.append("the line has %d hex digits, expected %d" % (len(got), pos))
    problems = [p for p in problems if p]
    if problems:
        raise AssertionError("sample %s: %s" % (sample, "; ".join(problems)))


def firmware_should_end_normally(line):
    if line.strip() != "tinyc-exit 0 ok":
        raise AssertionError("the firmware ended with: %s" % line.strip())
