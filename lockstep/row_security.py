"""PostgreSQL row-level security: the database's own copy of account-manager scoping.

Every query already narrows an account manager's reads in Python (lockstep.queries.scope).
On PostgreSQL the database enforces the same rule a second time, so a query that forgets
its filter still returns only the manager's tenants. Migration 0006 creates the policies;
this module sets, at the start of every transaction of a session opened for an actor,
what they key on:

- `lockstep.actor_role` and `lockstep.actor_email`, with set_config(..., true), which is
  `SET LOCAL`: they end with the transaction and never leak into the next user of a pooled
  connection;
- for every role not in SEES_EVERY_TENANT (today: account managers), `SET LOCAL ROLE
  lockstep_app`. The app connects as the tables' owner (one URL for migrations, the command
  line and the app); the owner bypasses row-level security, lockstep_app does not.

Admins, security leads and executives keep the owner's role: the policies would let them see
every row anyway, and under a policy PostgreSQL may not use an index for a filter that is
not leakproof, such as the tenant search's LIKE on its trigram index (0.6 ms as the owner,
250 ms under the policy: a sequential scan of a 300,000-tenant test table). A role added
later is scoped by default: fail closed.

Sessions opened without an actor (command line, migrations, demo load, imports, snapshot
back-fill, a customer's share link, which is resolved by its token) set nothing and run as
the owner. SQLite has no row-level security: nothing is set there and the Python scoping
is the only one.
"""

from __future__ import annotations

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from lockstep.permissions import Actor

APP_ROLE = "lockstep_app"
ROLE_SETTING = "lockstep.actor_role"
EMAIL_SETTING = "lockstep.actor_email"
# Must match SEES_EVERY_TENANT in migrations/versions/0006_row_level_security.py.
SEES_EVERY_TENANT = frozenset({"admin", "security_lead", "executive"})

_SET_ACTOR = text(
    f"SELECT set_config('{ROLE_SETTING}', :role, true), set_config('{EMAIL_SETTING}', :email, true)"
)
_SET_ACTOR_AND_ROLE = text(
    f"SELECT set_config('{ROLE_SETTING}', :role, true), set_config('{EMAIL_SETTING}', :email, true), "
    f"set_config('role', '{APP_ROLE}', true)"
)


def runs_as_app_role(actor: Actor) -> bool:
    """True when the actor's transactions run as lockstep_app, under the row-level policies."""
    return actor.role not in SEES_EVERY_TENANT


def scope_session_to(session: Session, actor: Actor) -> None:
    """Make every transaction `session` begins carry the actor's row-level scope (PostgreSQL only)."""
    statement = _SET_ACTOR_AND_ROLE if runs_as_app_role(actor) else _SET_ACTOR
    params = {"role": actor.role, "email": actor.email}

    # after_begin, not once: should a caller commit or roll back and go on reading, the next
    # transaction is scoped too instead of silently running as the owner.
    @event.listens_for(session, "after_begin")
    def _scope(_session, _transaction, connection):
        if connection.dialect.name == "postgresql":
            connection.execute(statement, params)
