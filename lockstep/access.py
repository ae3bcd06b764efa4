"""Which role opens which page: one table read by the navigation, the README and tests."""

from __future__ import annotations

# page key -> (title, roles that may open it). Order is the sidebar order.
PAGES: dict[str, tuple[str, frozenset[str]]] = {
    "overview": ("Overview", frozenset({"admin", "security_lead", "account_manager", "executive"})),
    "plan": ("Plan", frozenset({"admin", "security_lead", "executive"})),
    "rollout": ("Rollout", frozenset({"admin", "security_lead", "account_manager", "executive"})),
    "e2ee": ("E2EE", frozenset({"admin", "security_lead", "account_manager", "executive"})),
    "weekly": ("Weekly", frozenset({"admin", "security_lead", "executive"})),
    "customers": ("Customers", frozenset({"admin", "account_manager"})),
}


def pages_for(role: str) -> list[str]:
    """Page keys `role` may open, in sidebar order."""
    return [key for key, (_, roles) in PAGES.items() if role in roles]


def may_open(role: str, page: str) -> bool:
    """True when `role` may open `page`."""
    return role in PAGES[page][1]
