"""The one exception type that reaches the user as a single line."""


class SnnbenchError(Exception):
    """A user-facing error: bad input, missing data, an unknown name.

    The CLI prints ``snnbench: error: <message>`` and exits non-zero, without a traceback.
    Internal bugs are not wrapped in this type, so they still show their traceback.
    """
