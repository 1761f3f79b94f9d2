"""Errors shared by every tailcast package.

All errors raised on purpose by tailcast derive from :class:`TailcastError`, so a
caller (the CLI, the REST API) can tell a user mistake from a bug.
"""

from __future__ import annotations


class TailcastError(Exception):
    """Base class of every error tailcast raises on purpose."""


class InputError(TailcastError):
    """Input that tailcast cannot accept, located as precisely as it is known.

    Args:
        message: What is wrong, in words a user can act on.
        file: The file the input came from, if any.
        line: 1-based line (or row, for columnar files) where the problem starts.
        field: The record field at fault, if one is.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line) if p is not None)
        what = f"field {self.field!r}: " if self.field else ""
        return f"{where}: {what}{self.message}" if where else f"{what}{self.message}"


class StoreError(TailcastError):
    """The feature store could not complete an operation (nothing was written)."""
