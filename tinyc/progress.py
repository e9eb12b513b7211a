"""Progress of a long loop over samples, on stderr: one line updated in place (``\\r``) on a
terminal; off a terminal (CI, pipes) nothing, or with ``final`` a single line at the end."""
from __future__ import annotations

import sys
from typing import TextIO

CLEAR = "\r\x1b[K"  # back to the line's start, erase it


class Progress:
    def __init__(self, total: int, label: str, final: bool = False, keep: bool = False,
                 min_total: int = 1, stream: TextIO | None = None):
        """``keep``: leave the last line on a terminal (else it is cleared); ``min_total``: fewer
        samples show nothing."""
        self.total, self.label, self.final, self.keep = total, label, final, keep
        self.stream = sys.stderr if stream is None else stream
        self.on = total >= min_total
        self.tty = self.on and _isatty(self.stream)

    def text(self, done: int) -> str:
        return f"tinyc: {self.label}: {done}/{self.total} samples ({done * 100 // max(self.total, 1)}%)"

    def step(self, done: int) -> None:
        """``done`` of the samples are done; the last step ends the line."""
        if not self.on:
            return
        if self.tty:
            self.stream.write(CLEAR + self.text(done))
            if done >= self.total:
                self.stream.write("\n" if self.keep else CLEAR)
            self.stream.flush()
        elif self.final and done >= self.total:
            print(self.text(done), file=self.stream, flush=True)


def status(text: str, stream: TextIO | None = None) -> None:
    """A one-line status on a terminal (cleared by ``status("")``); nothing off a terminal."""
    stream = sys.stderr if stream is None else stream
    if _isatty(stream):
        stream.write(CLEAR + text)
        stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
