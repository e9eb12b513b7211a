"""One exception type for every problem caused by the user's input.

The CLI prints ``tinyc: error: <message>`` and exits with code 2 for these; anything else is a bug.
"""


class TinycError(Exception):
    """A problem with the model, the options or the environment, described in one line."""


class UnsupportedError(TinycError):
    """The model uses an op or an attribute variant tinyc cannot compile."""
