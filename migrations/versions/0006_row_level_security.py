"""row-level security: account managers see only their own tenants, enforced by PostgreSQL

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 02:30:00

PostgreSQL only (SQLite has no row-level security; its scoping stays in Python). This:

- creates the role lockstep_app (NOLOGIN) unless it exists. Roles belong to the whole
  cluster, not to one database, so the downgrade leaves it in place (other databases may use
  it); `DROP ROLE lockstep_app` by hand once no database needs it. If the migrating role may
  not create roles, a superuser runs `CREATE ROLE lockstep_app NOLOGIN` first. A migrating
  role that is not a superuser is made a member, so the app can `SET LOCAL ROLE` to it;
- grants lockstep_app what an account manager's transactions need: SELECT on every table but
  the audit log (and, by default privileges, on tables later migrations create), INSERT on
  notes and audit entries, INSERT/UPDATE on share links and the audit head;
- enables row-level security on every table with per-tenant rows a manager's pages read
  (tenants, tenant_features, tenant_notes, rollout_events, current_state, stage_counts,
  feature_counts, share_links) with one policy each for lockstep_app, keyed on two settings
  the app sets per transaction (lockstep.row_security): lockstep.actor_role and
  lockstep.actor_email. Admins, security leads and executives see every row; an account
  manager the rows of tenants whose account_manager is their e-mail; anyone else, or a
  transaction that set nothing, sees nothing (fail closed). WITH CHECK is the same rule, so
  a manager cannot write a note or share link onto another manager's tenant either.

Not FORCE: the tables' owner (who migrates, and whom the command line, demo load, imports and
snapshot back-fill run as) bypasses the policies, as does any superuser.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# What the downgrade destroys (lockstep.migrate.downgrade_losses; `db downgrade` asks before it).
DOWNGRADE_DROPS_DATA: str | None = None  # policies and grants only

APP_ROLE = "lockstep_app"
POLICY = "lockstep_actor_scope"
# Must match lockstep.row_security.SEES_EVERY_TENANT.
SEES_EVERY_TENANT = ("admin", "security_lead", "executive")
# Tables whose rows carry the manager, and tables whose rows belong to a tenant.
MANAGER_KEYED = ("tenants", "current_state", "stage_counts", "feature_counts")
TENANT_KEYED = ("tenant_features", "tenant_notes", "rollout_events", "share_links")
WRITES = {
    "tenant_notes": "INSERT",
    "share_links": "INSERT, UPDATE",
    "audit_log": "INSERT",
    "audit_head": "INSERT, UPDATE",
}

_ROLE = "current_setting('lockstep.actor_role', true)"
_EMAIL = "current_setting('lockstep.actor_email', true)"
_SEES_ALL = f"{_ROLE} IN ({', '.join(repr(r) for r in SEES_EVERY_TENANT)})"


def _manages(column: str) -> str:
    return f"({_ROLE} = 'account_manager' AND {column} = {_EMAIL})"


def _rule(table: str) -> str:
    if table in MANAGER_KEYED:
        return f"{_SEES_ALL} OR {_manages('account_manager')}"
    # Through the tenant: an EXISTS on the primary key per row, and only for managers.
    exists = f"EXISTS (SELECT 1 FROM tenants t WHERE t.id = {table}.tenant_id AND {_manages('t.account_manager')})"  # noqa: S608 - names of this module
    return f"{_SEES_ALL} OR {exists}"


def upgrade() -> None:
    """Apply this revision."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                BEGIN
                    CREATE ROLE {APP_ROLE} NOLOGIN;
                EXCEPTION
                    -- another database of this cluster migrating at the same moment
                    WHEN duplicate_object OR unique_violation THEN NULL;
                    WHEN insufficient_privilege THEN
                        RAISE EXCEPTION 'role {APP_ROLE} does not exist and % may not create it',
                            current_user
                            USING HINT = 'As a superuser: CREATE ROLE {APP_ROLE} NOLOGIN; then migrate again.';
                END;
            END IF;
            IF NOT pg_has_role(current_user, '{APP_ROLE}', 'MEMBER') THEN
                BEGIN
                    EXECUTE format('GRANT {APP_ROLE} TO %I', current_user);
                EXCEPTION WHEN insufficient_privilege THEN
                    RAISE EXCEPTION '% may not make itself a member of {APP_ROLE}', current_user
                        USING HINT = format('As a superuser: GRANT {APP_ROLE} TO %I; then migrate again.',
                                            current_user);
                END;
            END IF;
            EXECUTE format('GRANT USAGE ON SCHEMA %I TO {APP_ROLE}', current_schema());
            EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO {APP_ROLE}', current_schema());
            EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA %I TO {APP_ROLE}', current_schema());
        END
        $$
    """)
    op.execute(f"REVOKE SELECT ON audit_log FROM {APP_ROLE}")  # noqa: S608 - names of this module
    op.execute(f"ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO {APP_ROLE}")
    for table, privileges in WRITES.items():
        op.execute(f"GRANT {privileges} ON {table} TO {APP_ROLE}")
    for table in MANAGER_KEYED + TENANT_KEYED:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        rule = _rule(table)
        op.execute(f"CREATE POLICY {POLICY} ON {table} FOR ALL TO {APP_ROLE} USING ({rule}) WITH CHECK ({rule})")


def downgrade() -> None:
    """Revert this revision."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in MANAGER_KEYED + TENANT_KEYED:
        op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER DEFAULT PRIVILEGES REVOKE SELECT ON TABLES FROM {APP_ROLE}")  # noqa: S608 - names of this module
    op.execute(f"""
        DO $$
        BEGIN
            EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM {APP_ROLE}', current_schema());
            EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM {APP_ROLE}', current_schema());
            EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM {APP_ROLE}', current_schema());
        END
        $$
    """)
