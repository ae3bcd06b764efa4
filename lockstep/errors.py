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
    """One bad value in an input file."""

    row: int
    column: str
    value: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column!r}, value {self.value!r}: {self.reason}"


@dataclass
class ImportRejected(LockstepError):
    """An import found bad rows; nothing was written."""

    path: str
    errors: list[RowError]
    total_errors: int
    cap: int = field(default=50)

    def __str__(self) -> str:
        lines = [f"{self.path}: {self.total_errors} bad value(s); nothing was imported"]
        lines += [f"  {self.path}: {e}" for e in self.errors[: self.cap]]
        if self.total_errors > min(len(self.errors), self.cap):
            lines.append(f"  ... and {self.total_errors - min(len(self.errors), self.cap)} more")
        return "\n".join(lines)


class ConflictError(LockstepError):
    """Someone else saved a change since this one was loaded (optimistic locking)."""

    def __init__(self, message: str, *, current: dict, their_change: dict | None):
        super().__init__(message)
        self.current = current
        self.their_change = their_change
