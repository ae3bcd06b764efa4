"""Which role opens which page: one table read by the navigation, the README and tests."""

from __future__ import annotations

from lockstep.models import ROLES
from lockstep.permissions import ACTIONS

# page key -> (title, roles that may open it). Order is the sidebar order.
PAGES: dict[str, tuple[str, frozenset[str]]] = {
    "overview": ("Overview", frozenset({"admin", "security_lead", "account_manager", "executive"})),
    "plan": ("Plan", frozenset({"admin", "security_lead", "executive"})),
    "rollout": ("Rollout", frozenset({"admin", "security_lead", "account_manager", "executive"})),
    "e2ee": ("E2EE", frozenset({"admin", "security_lead", "account_manager", "executive"})),
    "weekly": ("Weekly", frozenset({"admin", "security_lead", "executive"})),
    "customers": ("Customers", frozenset({"admin", "account_manager"})),
    "audit": ("Audit", frozenset({"admin"})),
    "users": ("Users", frozenset({"admin"})),
}

# Pages outside the role table: sign-in (signed out) and a customer's share link (no account).
PUBLIC_PAGES = ("login", "share")


def pages_for(role: str) -> list[str]:
    """Page keys `role` may open, in sidebar order."""
    return [key for key, (_, roles) in PAGES.items() if role in roles]


def may_open(role: str, page: str) -> bool:
    """True when `role` may open `page`."""
    return role in PAGES[page][1]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def page_matrix_markdown() -> str:
    """The role × page table as Markdown (for the README and docs/security.md)."""
    return _table(
        ["page", *ROLES],
        [[title, *("✓" if r in roles else "" for r in ROLES)] for title, roles in PAGES.values()],
    )


def action_matrix_markdown() -> str:
    """The role × action table as Markdown (for the README and docs/security.md)."""
    return _table(
        ["action", *ROLES],
        [[f"`{a}`", *("✓" if r in roles else "" for r in ROLES)] for a, roles in ACTIONS.items()],
    )
