"""Domain errors: each carries a message a person can act on."""

from __future__ import annotations

from dataclasses import dataclass, field


class LockstepError(Exception):
    """Base of every error Lockstep raises on purpose."""


class ValidationError(LockstepError):
    """Input broke a rule; the message names what and where."""


class NotFoundError(LockstepError):
    """The thing asked for does not exist (or is outside the caller's scope)."""


class PermissionDenied(LockstepError):
    """The caller's role may not do this."""


@dataclass
class RowError:
    """One bad value in an input file; `kind` names the reason without the value, for the summary."""

    row: int
    column: str
    value: str
    reason: str
    kind: str = ""

    def __str__(self) -> str:
        if self.row == 0:
            # About the file as a whole (a directory, unreadable): no row to point at.
            return self.reason
        return f"row {self.row}, column {self.column!r}, value {self.value!r}: {self.reason}"

    @property
    def group(self) -> str:
        """The reason without the value: the summary's key together with the column."""
        return self.kind or self.reason


@dataclass
class ErrorGroup:
    """How many bad values share one column and reason, and the first rows they are on."""

    column: str
    kind: str
    count: int
    first_rows: list[int]

    def __str__(self) -> str:
        rows = ", ".join(str(r) for r in self.first_rows)
        more = ", ..." if self.count > len(self.first_rows) else ""
        where = f"column {self.column!r}" if self.column else "whole row"
        return f"{where}: {self.kind}: {self.count} (row{'s' if self.count > 1 else ''} {rows}{more})"


@dataclass
class ImportRejected(LockstepError):
    """An import found bad rows; nothing was written.

    `errors` holds the first `cap` bad values by row, `summary` one line per column and
    reason over all of them, and `every_error` all of them when the caller asked for it
    (the --errors-out file); otherwise None.
    """

    path: str
    errors: list[RowError]
    total_errors: int
    cap: int = field(default=50)
    summary: list[ErrorGroup] = field(default_factory=list)
    every_error: list[RowError] | None = None

    def __str__(self) -> str:
        lines = [f"{self.path}: {self.total_errors} bad value(s); nothing was imported"]
        if len(self.summary) > 1 or self.total_errors > min(len(self.errors), self.cap):
            lines.append("  by column and reason:")
            lines += [f"    {g}" for g in self.summary]
            lines.append("  first bad values:")
        lines += [f"  {self.path}: {e}" for e in self.errors[: self.cap]]
        if self.total_errors > min(len(self.errors), self.cap):
            lines.append(f"  ... and {self.total_errors - min(len(self.errors), self.cap)} more")
        return "\n".join(lines)


class DatabaseBusy(LockstepError):
    """Other writers kept aborting this write (deadlock or serialization failure) beyond the retries."""


class ConflictError(LockstepError):
    """Someone else saved a change since this one was loaded (optimistic locking)."""

    def __init__(self, message: str, *, current: dict, their_change: dict | None):
        super().__init__(message)
        self.current = current
        self.their_change = their_change
