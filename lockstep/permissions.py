"""Who may do what: the one table every service and query consults."""

from __future__ import annotations

from dataclasses import dataclass

from lockstep.errors import PermissionDenied


@dataclass(frozen=True)
class Actor:
    """Whoever is acting: a signed-in user, or the command line acting as admin."""

    email: str
    role: str
    user_id: int | None = None

    @property
    def is_manager(self) -> bool:
        """True for account managers, whose tenant reads are scoped to their own."""
        return self.role == "account_manager"


SYSTEM = Actor(email="system@lockstep", role="admin")

# action -> roles allowed. Account-manager actions are further scoped to own tenants.
ACTIONS: dict[str, frozenset[str]] = {
    "plan.edit": frozenset({"admin", "security_lead"}),
    "plan.sync": frozenset({"admin", "security_lead"}),
    "event.record": frozenset({"admin", "security_lead"}),
    "import.run": frozenset({"admin", "security_lead"}),
    "snapshot.close": frozenset({"admin", "security_lead"}),
    "note.add": frozenset({"admin", "account_manager"}),
    "share.create": frozenset({"admin", "account_manager"}),
    "share.revoke": frozenset({"admin", "account_manager"}),
    "user.manage": frozenset({"admin"}),
    "audit.read": frozenset({"admin"}),
    "demo.load": frozenset({"admin"}),
    "token.manage": frozenset({"admin"}),
    "report.deliver": frozenset({"admin"}),
    "state.rebuild": frozenset({"admin"}),
}


def can(actor: Actor, action: str) -> bool:
    """True when `actor`'s role may perform `action`."""
    return actor.role in ACTIONS[action]


def require(actor: Actor, action: str) -> None:
    """Raise PermissionDenied unless `actor` may perform `action`."""
    if not can(actor, action):
        raise PermissionDenied(f"{actor.email} ({actor.role}) may not {action.replace('.', ' ')}")
