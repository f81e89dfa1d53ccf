"""The daxfuzz exception tree.

    DaxfuzzError                 base of every error the tool raises on purpose
    +-- InputError               malformed user input: trace, corpus file, flag, config
    |   |                        (exit code 2; names the file and line)
    |   +-- OutputError          a path daxfuzz was told to write cannot be written (exit
    |                            code 2; also an OSError, for callers that tolerate one)
    +-- ConfigError              an unknown target, engine or geometry value (exit code 2)

A divergence between oracle and target is *not* an exception: it is a value
(:class:`daxfuzz.core.runner.Divergence`).  Anything else that escapes is a daxfuzz bug
(exit code 3).
"""

from __future__ import annotations

EXIT_AGREE = 0
EXIT_DIVERGENCE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


class DaxfuzzError(Exception):
    """Base class of the errors daxfuzz raises on purpose."""

    exit_code = EXIT_INTERNAL


class InputError(DaxfuzzError):
    """Malformed input; the message names the file and the line and says how to fix it."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        self.reason = message
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        elif line is not None:
            where = f"line {line}: "
        super().__init__(where + message)


class OutputError(InputError, OSError):
    """A file or folder daxfuzz writes cannot be written there: a directory, device or
    FIFO in the way, a read-only or full file system, no permission."""


class ConfigError(DaxfuzzError):
    """An unknown target/engine name or an impossible geometry."""

    exit_code = EXIT_BAD_INPUT
