"""Account-manager scoping: the one WHERE every tenant query goes through.

An account manager sees only tenants whose `account_manager` is their e-mail. The
restriction is added to the SQL itself, so even a lookup by tenant id cannot return
another manager's tenant; everyone else sees every tenant.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from sqlalchemy import Select

from lockstep.permissions import Actor

S = TypeVar("S", bound=Select)


def scoped(stmt: S, actor: Actor, manager_column) -> S:
    """`stmt` restricted to the actor's own tenants when the actor is an account manager."""
    if actor.is_manager:
        return stmt.where(manager_column == actor.email)
    return stmt


def is_narrowed(actor: Actor, managers: Iterable[str] | None) -> bool:
    """True when rows must be counted per tenant (the live counts know no managers)."""
    return actor.is_manager or bool(managers)
