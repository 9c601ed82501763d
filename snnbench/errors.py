"""The one exception type that reaches the user as a single line."""


class SnnbenchError(Exception):
    """A user-facing error: bad input, missing data, an unknown name.

    The CLI prints ``snnbench: error: <message>`` and exits non-zero, without a traceback.
    Internal bugs are not wrapped in this type, so they still show their traceback.
    """


class DiskFull(SnnbenchError):
    """The disk (or the user's quota) is full: said as such, and the run is left resumable."""


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is an ENOSPC or EDQUOT."""
    import errno

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskFull) or (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)):
            return True
        if "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
