"""The command line: `python -m lockstep COMMAND ...`. Every command has --help.

Exit codes: 0 done; 1 the input or the data failed a check (the message says where);
2 the command line itself was wrong; 3 something named does not exist; 4 not allowed (also:
the database is read-only); 5 the database could not be reached, is not migrated, or stayed
busy with other writers beyond the retries; 6 e-mail could not be sent (or not to everyone).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import ArgumentError

from lockstep.config import SettingsError, get_settings
from lockstep.errors import (
    ConflictError,
    DatabaseBusy,
    ImportRejected,
    LockstepError,
    NotFoundError,
    PermissionDenied,
    ValidationError,
)
from lockstep.mail import DeliveryError
from lockstep.permissions import SYSTEM

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_DENIED, EXIT_DATABASE = 0, 1, 2, 3, 4, 5
EXIT_SEND = 6


def _engine():
    from lockstep.db import make_engine

    return make_engine(get_settings().database_url)


def _progress(desc: str, enabled: bool) -> tuple[Callable[[int, int | None], None], Callable[[], None]]:
    """A tqdm-backed progress callback for long imports (silent when not a terminal)."""
    if not enabled:
        return (lambda done, total: None), (lambda: None)
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit=" rows", unit_scale=True, file=sys.stderr)

    def update(done: int, total: int | None) -> None:
        if total is not None and bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    return update, bar.close


# --- commands -------------------------------------------------------------------------


def cmd_db_upgrade(args) -> int:
    from lockstep.migrate import upgrade

    upgrade(get_settings().database_url, args.revision)
    print(f"database at revision {args.revision}: {_safe_url()}")
    return EXIT_OK


def cmd_db_grant_app_role(args) -> int:
    from lockstep.migrate import grant_app_role

    for sql in grant_app_role(_engine(), args.role):
        print(sql)
    print(f"role {args.role} may now run the app; on audit_log it may only INSERT and SELECT")
    return EXIT_OK


def cmd_db_backup(args) -> int:
    from lockstep.backup import backup_database

    out = Path(args.output)
    manifest = backup_database(engine=_engine(), output=out)
    rows = sum(manifest.tables.values())
    print(
        f"wrote {out} ({out.stat().st_size:,} bytes): {len(manifest.tables)} tables, {rows:,} rows, "
        f"revision {manifest.revision}, audit head {manifest.audit_head}"
    )
    return EXIT_OK


def cmd_db_restore(args) -> int:
    from lockstep.backup import restore_database

    result = restore_database(engine=_engine(), backup=Path(args.file), force=args.force)
    print(f"{_safe_url()}: {result.summary()}")
    return EXIT_OK


def cmd_db_current(args) -> int:
    from lockstep.migrate import schema_status

    status = schema_status(_engine())
    print(f"{_safe_url()}: {status.describe()}")
    return EXIT_OK


def cmd_db_check(args) -> int:
    from lockstep.migrate import schema_status

    status = schema_status(_engine())
    if status.at_head:
        print(f"{_safe_url()}: {status.describe()}")
        return EXIT_OK
    print(f"error: {_safe_url()}: {status.describe()}", file=sys.stderr)
    return EXIT_DATABASE


def cmd_db_downgrade(args) -> int:
    from lockstep.migrate import downgrade, downgrade_losses, schema_status

    status = schema_status(_engine())
    losses = downgrade_losses(status.current, args.revision)
    if losses and not args.i_understand_data_loss:
        print(
            f"error: refused: downgrading {_safe_url()} from {status.current} to {args.revision} "
            "destroys data:\n"
            + "".join(f"  {line}\n" for line in losses)
            + "Back the database up first; to go ahead, add --i-understand-data-loss.",
            file=sys.stderr,
        )
        return EXIT_DENIED
    downgrade(get_settings().database_url, args.revision)
    print(f"database downgraded from {status.current} to {args.revision}: {_safe_url()}")
    return EXIT_OK


def cmd_db_rebuild_state(args) -> int:
    from lockstep.db import write_transaction
    from lockstep.services.repair import rebuild_state

    result = write_transaction(
        lambda session: rebuild_state(session=session, actor=SYSTEM, dry_run=args.dry_run), engine=_engine()
    )
    for line in result.lines():
        print(line)
    if args.dry_run and result.differences:
        print("dry run: nothing was written; run without --dry-run to rebuild")
        return EXIT_INVALID
    return EXIT_OK


def cmd_plan_validate(args) -> int:
    from lockstep.plan import load_plan

    plan = load_plan(Path(args.file))
    print(f"{args.file}: valid ({len(plan.items)} items, {len(plan.tracks)} tracks, {len(plan.tiers)} tiers)")
    return EXIT_OK


def cmd_plan_sync(args) -> int:
    from lockstep.plan import sync_plan_file

    result = sync_plan_file(Path(args.file), engine=_engine())
    print(f"{args.file}: {result.summary()}" if hasattr(result, "summary") else f"{args.file}: {result}")
    return EXIT_OK


def cmd_import(args) -> int:
    from lockstep.exports import import_errors_csv
    from lockstep.services import imports

    options = {"sheet": args.sheet, "keep_all_errors": args.errors_out is not None}
    if args.kind == "events":
        options["date_format"] = args.date_format
    elif args.date_format is not None:
        raise ValidationError("--date-format applies to events files only (tenants have no dates)")
    fn = imports.import_tenants if args.kind == "tenants" else imports.import_events
    update, close = _progress(f"import {args.kind}", sys.stderr.isatty() and not args.quiet)
    try:
        result = fn(engine=_engine(), path=Path(args.file), actor=SYSTEM, progress=update, **options)
    except ImportRejected as exc:
        if args.errors_out is not None:
            Path(args.errors_out).write_bytes(import_errors_csv(exc.every_error or exc.errors))
            print(f"every bad value ({exc.total_errors}) written to {args.errors_out}", file=sys.stderr)
        raise
    finally:
        close()
    if args.errors_out is not None:
        # An empty error file (header only), so a script never reads a stale one from an earlier run.
        Path(args.errors_out).write_bytes(import_errors_csv([]))
    print(
        f"{args.file}: added {result.added}, updated {result.updated}, skipped {result.skipped} "
        f"(already present) of {result.rows} rows"
    )
    return EXIT_OK


def cmd_demo(args) -> int:
    from lockstep.demo import load_demo

    engine = _engine()
    if args.if_empty and _has_tenants(engine):
        print("demo: the database already has tenants; nothing loaded")
        return EXIT_OK
    summary = load_demo(engine=engine, tenants=args.tenants, seed=args.seed, actor=SYSTEM)
    print(f"demo: {summary}")
    return EXIT_OK


def _has_tenants(engine) -> bool:
    from sqlalchemy import func, select

    from lockstep.db import read_session
    from lockstep.models import Tenant

    with read_session(engine) as s:
        return bool(s.scalar(select(func.count()).select_from(Tenant)))


def cmd_user_add(args) -> int:
    from lockstep.db import write_transaction
    from lockstep.services.users import add_user

    password = os.environ.get("LOCKSTEP_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            raise ValidationError("no password: set LOCKSTEP_PASSWORD or run in a terminal to be asked")
        password = getpass.getpass(f"password for {args.email}: ")
        if password != getpass.getpass("again: "):
            raise ValidationError("the two passwords differ")
    user = write_transaction(
        lambda session: add_user(
            session=session,
            actor=SYSTEM,
            email=args.email,
            role=args.role,
            password=password,
            display_name=args.name or "",
        ),
        engine=_engine(),
    )
    print(f"user {user.email} added with role {user.role}")
    return EXIT_OK


def cmd_audit_verify(args) -> int:
    from lockstep.db import read_session
    from lockstep.services.audit import verify

    with read_session(_engine()) as session:
        result = verify(session, expected_head=args.head)
    if result.ok:
        keyed = f"{result.keyed} with a valid MAC" if result.keyed else "none with a MAC: no audit key in use"
        print(f"audit log intact: {result.checked} entries ({keyed}), head {result.head}")
        return EXIT_OK
    print(f"audit log BROKEN after {result.checked} good entries: {result.problem}", file=sys.stderr)
    return EXIT_INVALID


def cmd_audit_head(args) -> int:
    from lockstep.db import read_session
    from lockstep.models import AuditHead
    from lockstep.services.audit import GENESIS

    with read_session(_engine()) as session:
        head = session.get(AuditHead, 1)
        print(head.hash if head else GENESIS)
    return EXIT_OK


def _program_option(parser, what: str = "to act on") -> None:
    parser.add_argument(
        "--program",
        metavar="ID",
        help=f"the program {what} (default: the one running today, else the latest; "
        "an unknown id exits 3 listing the known ones)",
    )


def cmd_snapshot_close(args) -> int:
    from lockstep.clock import parse_week
    from lockstep.db import write_transaction
    from lockstep.services import snapshots

    def close(session):
        if args.week:
            week, program = parse_week(args.week), args.program
            return [snapshots.close_week(session=session, actor=SYSTEM, week_start=week, program=program)]
        return snapshots.close_latest_week(session=session, actor=SYSTEM, program=args.program)

    results = write_transaction(close, engine=_engine())
    for r in results if isinstance(results, list) else [results]:
        print(f"closed {r}")
    return EXIT_OK


def cmd_snapshot_backfill(args) -> int:
    from lockstep.db import write_transaction
    from lockstep.services import snapshots

    results = write_transaction(
        lambda session: snapshots.backfill_weeks(session=session, actor=SYSTEM, program=args.program),
        engine=_engine(),
    )
    print(f"closed {len(results)} week(s)" + "".join(f"\n  {r}" for r in results))
    return EXIT_OK


REPORT_KINDS = {".pdf": "pdf", ".html": "html", ".htm": "html"}


def _report_kind(path: Path, allowed: tuple[str, ...]) -> str:
    kind = REPORT_KINDS.get(path.suffix.lower())
    if kind not in allowed:
        raise ValidationError(f"{path}: the file name must end in {' or '.join('.' + k for k in allowed)}")
    # Checked before the report is made: drawing the charts takes seconds.
    if not path.parent.is_dir():
        raise ValidationError(f"{path}: the folder {path.parent} does not exist")
    return kind


def _write_report(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    print(f"wrote {path} ({len(data):,} bytes)")


def cmd_report_weekly(args) -> int:
    from lockstep.clock import parse_week
    from lockstep.db import read_session
    from lockstep.reports.weekly import weekly_report_file

    out = Path(args.output)
    kind = _report_kind(out, ("pdf", "html"))
    with read_session(_engine()) as session:
        data = weekly_report_file(
            session=session, actor=SYSTEM, week_start=parse_week(args.week), kind=kind, program=args.program
        )
    _write_report(out, data)
    return EXIT_OK


def cmd_report_customer(args) -> int:
    from lockstep.db import read_session
    from lockstep.reports.customer import customer_report

    out = Path(args.output)
    _report_kind(out, ("pdf",))
    with read_session(_engine()) as session:
        data = customer_report(
            session=session, actor=SYSTEM, tenant_external_id=args.tenant, program=args.program
        )
    _write_report(out, data)
    return EXIT_OK


def cmd_api(args) -> int:
    import uvicorn

    from lockstep.api import create_app

    print(
        f"Lockstep API on http://{args.host}:{args.port}/api/v1 (docs: /api/v1/docs), database {_safe_url()}"
    )
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level=args.log_level)
    return EXIT_OK


def cmd_token_add(args) -> int:
    from lockstep.db import write_session
    from lockstep.services.api_tokens import add_api_token

    with write_session(_engine()) as session:
        row, token = add_api_token(
            session=session, actor=SYSTEM, name=args.name, role=args.role, user_email=args.user
        )
    acts = f"as {row.user_email}" if row.user_email else f"as token:{row.name}"
    # The token alone on stdout (TOKEN=$(python -m lockstep token add ...)); the words on stderr.
    print(
        f"API token {row.name!r} ({row.role}, acting {acts}); shown this once, keep it secret:",
        file=sys.stderr,
    )
    print(token)
    return EXIT_OK


def cmd_token_list(args) -> int:
    from lockstep.db import read_session
    from lockstep.services.api_tokens import list_api_tokens

    with read_session(_engine()) as session:
        tokens = list_api_tokens(session=session, actor=SYSTEM)
    if tokens.empty:
        print("no API tokens (make one with `python -m lockstep token add --name NAME --role ROLE`)")
        return EXIT_OK
    for t in tokens.itertuples():
        made = f"made {t.created_at:%Y-%m-%d %H:%M} by {t.created_by}"
        gone = f", revoked {t.revoked_at:%Y-%m-%d %H:%M} by {t.revoked_by}" if t.status == "revoked" else ""
        user = f" as {t.user_email}" if t.user_email else ""
        print(f"{t.name:<24} {t.role:<16} {t.status:<8}{user} ({made}{gone})")
    return EXIT_OK


def cmd_token_revoke(args) -> int:
    from lockstep.db import write_session
    from lockstep.services.api_tokens import revoke_api_token

    with write_session(_engine()) as session:
        row = revoke_api_token(session=session, actor=SYSTEM, name=args.name)
    print(
        f"API token {row.name!r} revoked (at {row.revoked_at:%Y-%m-%d %H:%M} UTC); it no longer opens the API"
    )
    return EXIT_OK


def _sent_line(sent) -> str:
    refused = f" (refused by the server: {', '.join(sent.refused)})" if sent.refused else ""
    return f"sent {sent.subject!r} to {', '.join(sent.recipients)}{refused}"


def cmd_deliver_weekly(args) -> int:
    from lockstep.clock import parse_week
    from lockstep.services.deliveries import deliver_weekly_report

    sent = deliver_weekly_report(
        engine=_engine(),
        actor=SYSTEM,
        recipients=[a for a in args.to.split(",") if a.strip()],
        week=parse_week(args.week) if args.week else None,
        again=args.again,
        program=args.program,
    )
    print(_sent_line(sent))
    return EXIT_SEND if sent.refused else EXIT_OK


def cmd_deliver_overdue(args) -> int:
    from lockstep.services.deliveries import deliver_overdue, read_owner_addresses

    owners = read_owner_addresses(Path(args.owners)) if args.owners else {}
    run = deliver_overdue(
        engine=_engine(), actor=SYSTEM, owners=owners, again=args.again, program=args.program
    )
    for sent in run.sent:
        print(_sent_line(sent))
    for address in run.already_sent:
        print(f"skipped {address}: this week's list went there already (--again sends it once more)")
    if not run.sent and not run.already_sent and not run.no_address:
        print(f"{run.period}: no plan item is overdue or at risk; nothing sent")
    if run.no_address:
        print(
            f"error: no e-mail address for {len(run.no_address)} owner(s): {'; '.join(run.no_address)}\n"
            "add them to the owners file (--owners, CSV owner,email)",
            file=sys.stderr,
        )
    if any(s.refused for s in run.sent):
        return EXIT_SEND
    return EXIT_INVALID if run.no_address else EXIT_OK


def _safe_url() -> str:
    from sqlalchemy.engine import make_url

    return make_url(get_settings().database_url).render_as_string(hide_password=True)


# --- parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree; every command and group has --help."""
    p = argparse.ArgumentParser(
        prog="python -m lockstep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_cmd", required=True)
    up = db.add_parser("upgrade", help="apply migrations (default: to the newest)")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(func=cmd_db_upgrade)
    grant = db.add_parser(
        "grant-app-role",
        help="PostgreSQL: let ROLE run the app, with INSERT and SELECT only on the audit log (run as owner)",
    )
    grant.add_argument("role", help="an existing PostgreSQL role the app connects as (not the owner)")
    grant.set_defaults(func=cmd_db_grant_app_role)
    bak = db.add_parser(
        "backup", help="write a consistent backup while the app runs (see README: operations)"
    )
    bak.add_argument(
        "-o", "--output", required=True, help="backup file to write, e.g. lockstep-2020-06-30.backup"
    )
    bak.set_defaults(func=cmd_db_backup)
    res = db.add_parser(
        "restore", help="restore a backup into the empty database LOCKSTEP_DATABASE_URL names"
    )
    res.add_argument("file", help="a file written by `db backup`")
    res.add_argument(
        "--force", action="store_true", help="replace everything in a database that is not empty"
    )
    res.set_defaults(func=cmd_db_restore)
    db.add_parser("current", help="print the database's schema revision and the newest one").set_defaults(
        func=cmd_db_current
    )
    check = db.add_parser("check", help="exit 0 when the schema is the newest, 5 (with what to do) when not")
    check.set_defaults(func=cmd_db_check)
    down = db.add_parser("downgrade", help="undo migrations down to REVISION (refused when it destroys data)")
    down.add_argument("revision", help="revision to go down to, e.g. 0004, or base")
    down.add_argument(
        "--i-understand-data-loss", action="store_true", help="go ahead even though the downgrade drops data"
    )
    down.set_defaults(func=cmd_db_downgrade)
    rebuild = db.add_parser(
        "rebuild-state", help="recompute current state, stage counts and feature counts from the events"
    )
    rebuild.add_argument(
        "--dry-run", action="store_true", help="only show the differences (exit 1 when there are any)"
    )
    rebuild.set_defaults(func=cmd_db_rebuild_state)

    plan = sub.add_parser("plan", help="the plan as code").add_subparsers(dest="plan_cmd", required=True)
    for name, func, text in (
        ("validate", cmd_plan_validate, "check a plan file, change nothing"),
        ("sync", cmd_plan_sync, "upsert a plan file into the database"),
    ):
        c = plan.add_parser(name, help=text)
        c.add_argument("file", help="plan YAML, e.g. plan/90-day-plan.yaml")
        c.set_defaults(func=func)

    imp = sub.add_parser("import", help="import CSV files (see docs/csv-formats.md)")
    isub = imp.add_subparsers(dest="kind", required=True)
    for kind in ("tenants", "events"):
        c = isub.add_parser(kind, help=f"import {kind} from a CSV or XLSX file; all or nothing")
        c.add_argument("file", help="a .csv file, or a .xlsx workbook (its first sheet unless --sheet)")
        c.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        c.add_argument("--sheet", metavar="NAME", help="the XLSX sheet to read (default: the first)")
        c.add_argument(
            "--errors-out",
            metavar="FILE.csv",
            help="when the file is refused, write every bad value here (row, column, value, reason)",
        )
        if kind == "events":
            c.add_argument(
                "--date-format",
                metavar="FORMAT",
                help="read occurred_at in this layout as well as ISO 8601: a strptime pattern such as "
                "%%d/%%m/%%Y (day first), or 'excel' for Excel serial day numbers; times are UTC",
            )
        else:
            c.set_defaults(date_format=None)
        c.set_defaults(func=cmd_import)

    demo = sub.add_parser("demo", help="load deterministic demo data")
    demo.add_argument("--tenants", type=int, default=5000, help="number of tenants (default 5000)")
    demo.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    demo.add_argument("--if-empty", action="store_true", help="do nothing when tenants exist")
    demo.set_defaults(func=cmd_demo)

    user = sub.add_parser("user", help="user accounts").add_subparsers(dest="user_cmd", required=True)
    add = user.add_parser("add", help="add a user; password from LOCKSTEP_PASSWORD or a prompt")
    add.add_argument("email")
    add.add_argument(
        "--role", required=True, choices=["admin", "security_lead", "account_manager", "executive"]
    )
    add.add_argument("--name", help="display name")
    add.set_defaults(func=cmd_user_add)

    aud = sub.add_parser("audit", help="the tamper-evident audit log").add_subparsers(
        dest="audit_cmd", required=True
    )
    ver = aud.add_parser("verify", help="check the hash chain; non-zero exit names the first bad entry")
    ver.add_argument("--head", help="a head hash kept outside the database (catches a cut-off tail)")
    ver.set_defaults(func=cmd_audit_verify)
    aud.add_parser("head", help="print the newest hash, to keep outside the database").set_defaults(
        func=cmd_audit_head
    )

    snap = sub.add_parser("snapshot", help="weekly snapshots").add_subparsers(dest="snap_cmd", required=True)
    close = snap.add_parser("close-week", help="freeze a week's counts (default: the last ended week)")
    close.add_argument("--week", help="ISO week, e.g. 2020-W21")
    _program_option(close)
    close.set_defaults(func=cmd_snapshot_close)
    backfill = snap.add_parser("backfill", help="close every ended week of the program not yet closed")
    _program_option(backfill)
    backfill.set_defaults(func=cmd_snapshot_backfill)

    rep = sub.add_parser("report", help="reports to send: weekly (PDF/HTML), customer status (PDF)")
    rsub = rep.add_subparsers(dest="report_cmd", required=True)
    weekly = rsub.add_parser("weekly", help="the executive weekly report of a closed week")
    weekly.add_argument("--week", required=True, help="ISO week, e.g. 2020-W21 (must be closed)")
    weekly.add_argument("-o", "--output", required=True, help="file to write: .pdf or .html")
    _program_option(weekly)
    weekly.set_defaults(func=cmd_report_weekly)
    cust = rsub.add_parser("customer", help="one tenant's status report, to send the customer")
    cust.add_argument("tenant", metavar="TENANT_ID", help="the tenant's external id, e.g. T0000042")
    cust.add_argument("-o", "--output", required=True, help="file to write: .pdf")
    _program_option(cust, "whose tracks the report shows")
    cust.set_defaults(func=cmd_report_customer)

    api = sub.add_parser("api", help="serve the HTTP API (events in, tenant status out)")
    api.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    api.add_argument("--port", type=int, default=8700, help="port (default 8700)")
    api.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    api.set_defaults(func=cmd_api)

    tok = sub.add_parser("token", help="API tokens").add_subparsers(dest="token_cmd", required=True)
    tadd = tok.add_parser("add", help="make a token; it is printed once, only its hash is kept")
    tadd.add_argument("--name", required=True, help="a name to list and revoke it by, e.g. deploy-pipeline")
    tadd.add_argument(
        "--role", required=True, choices=["admin", "security_lead", "account_manager", "executive"]
    )
    tadd.add_argument(
        "--user", help="account_manager tokens: the manager (user e-mail) whose tenants it sees"
    )
    tadd.set_defaults(func=cmd_token_add)
    tok.add_parser("list", help="every token: name, role, status (never the token)").set_defaults(
        func=cmd_token_list
    )
    trev = tok.add_parser("revoke", help="stop a token at once")
    trev.add_argument("name")
    trev.set_defaults(func=cmd_token_revoke)

    dlv = sub.add_parser("deliver", help="e-mail reports (LOCKSTEP_SMTP_* settings); for cron or a timer")
    dsub = dlv.add_subparsers(dest="deliver_cmd", required=True)
    dweek = dsub.add_parser("weekly", help="the weekly report (PDF attached) of a closed week")
    dweek.add_argument("--week", help="ISO week, e.g. 2020-W21 (default: the newest closed week)")
    dweek.add_argument("--to", required=True, help="recipients, comma-separated: a@example.com,b@example.com")
    dweek.add_argument("--again", action="store_true", help="send even if this week was sent already")
    _program_option(dweek)
    dweek.set_defaults(func=cmd_deliver_weekly)
    dover = dsub.add_parser("overdue", help="each plan-item owner their overdue and at-risk items")
    dover.add_argument("--owners", help="CSV with columns owner,email mapping plan owners to addresses")
    dover.add_argument("--again", action="store_true", help="send even to owners sent this week already")
    _program_option(dover, "whose plan items are listed")
    dover.set_defaults(func=cmd_deliver_overdue)
    return p


# Domain errors by exit code, most specific first; any other LockstepError (and ValueError) is 1.
_EXIT_CODES: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], int], ...] = (
    ((ValidationError, ConflictError), EXIT_INVALID),
    (NotFoundError, EXIT_NOT_FOUND),
    (PermissionDenied, EXIT_DENIED),
    (DeliveryError, EXIT_SEND),
)


def _exit_code_for(exc: BaseException) -> int:
    """The documented exit code of a domain error."""
    return next((code for kinds, code in _EXIT_CODES if isinstance(exc, kinds)), EXIT_INVALID)


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        get_settings()  # every LOCKSTEP_* variable checked before any command runs
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return args.func(args)
    except ImportRejected as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    except FileNotFoundError as exc:
        print(f"error: {exc.filename}: no such file", file=sys.stderr)
        return EXIT_NOT_FOUND
    except OSError as exc:
        # A file that exists but cannot be read or written (a directory, no permission, disk full).
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_INVALID
    except DatabaseBusy as exc:
        print(f"error: database {_safe_url()}: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    except ArgumentError as exc:
        print(f"error: LOCKSTEP_DATABASE_URL is not a usable database URL: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    except (LockstepError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return _exit_code_for(exc)
    except Exception as exc:
        from lockstep.db import driver_error

        orig = driver_error(exc)
        if orig is None:
            raise
        code, message = database_failure(orig)
        print(f"error: database {_safe_url()}: {message}", file=sys.stderr)
        return code


# SQLSTATE classes and codes (PostgreSQL) and SQLite messages, by what a person should do next.
_READ_ONLY_STATES = {"25006"}  # read_only_sql_transaction
_SCHEMA_STATES = {"42P01", "42703"}  # undefined_table, undefined_column
_SCHEMA_WORDS = ("no such table", "no such column", "has no column named")  # SQLite
_BUSY_STATES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available
_UNREACHABLE_CLASSES = ("08", "57P", "28", "3D")  # connection, shutdown, sign-in, no such database
_UNREACHABLE_WORDS = ("connection refused", "could not connect", "unable to open database file",
                      "server closed the connection", "timeout expired", "could not translate host name")


def database_failure(orig: BaseException) -> tuple[int, str]:
    """The exit code and message for a database driver's error, by its cause."""
    state = getattr(orig, "sqlstate", None) or ""
    detail = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    lowered = str(orig).lower()
    if state in _READ_ONLY_STATES or "readonly database" in lowered or "read-only" in lowered:
        return EXIT_DENIED, f"the database is read-only ({detail}); nothing was written"
    if state in _SCHEMA_STATES or any(w in lowered for w in _SCHEMA_WORDS):
        return EXIT_DATABASE, f"{_schema_advice()} ({detail})"
    if state in _BUSY_STATES or "database is locked" in lowered:
        return EXIT_DATABASE, f"busy with other writers ({detail}); nothing was written, try again"
    if state.startswith(_UNREACHABLE_CLASSES) or any(w in lowered for w in _UNREACHABLE_WORDS):
        return EXIT_DATABASE, f"cannot reach the database ({detail})"
    if any(c.__name__ == "IntegrityError" for c in type(orig).__mro__):
        return EXIT_INVALID, f"the change breaks a rule of the database ({detail}); nothing was written"
    return EXIT_DATABASE, f"the database refused the command ({detail}); nothing was written"


def _schema_advice() -> str:
    """What the schema's revision says to do, or a plain hint when even that cannot be read."""
    from lockstep.migrate import schema_status

    try:
        return schema_status(_engine()).describe()
    except Exception:  # noqa: BLE001 - the advice must not hide the error being reported
        return "the schema is not what this version of Lockstep needs: run `python -m lockstep db upgrade`"
