"""One exception type for every problem caused by the user's input.

The CLI prints ``tinyc: error: <message>`` and exits with code 2 for these; anything else is a bug.
"""

# Characters that end a line (str.splitlines), shown escaped in messages: a message is one line
# whatever the model names its tensors and nodes.
_LINE_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"})


class TinycError(Exception):
    """A problem with the model, the options or the environment, described in one line."""

    def __str__(self) -> str:
        return super().__str__().translate(_LINE_BREAKS)


class UnsupportedError(TinycError):
    """The model uses an op or an attribute variant tinyc cannot compile."""
