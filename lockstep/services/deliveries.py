"""Scheduled delivery: the weekly report to executives, and each plan-item owner's late items, by e-mail.

Both are meant for cron or a systemd timer (`python -m lockstep deliver weekly|overdue`).
A delivery is recorded (table `deliveries`) and audited in the transaction that sends it:
the check "was this week sent already?", the SMTP conversation and the record happen
under one lock (PostgreSQL: a table lock; SQLite: the write transaction), so two runs at
once cannot both send, and a send that fails leaves no record and can simply be retried.
A week goes out once unless `again=True`. The one gap left: the server accepts the message
and then the commit fails; the record is lost and a retry sends a second copy, which we
prefer to a report that silently never arrives.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from email.message import EmailMessage
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from lockstep.clock import utcnow, week_label, week_start
from lockstep.config import Settings, get_settings
from lockstep.db import read_session, write_session
from lockstep.errors import NotFoundError, ValidationError
from lockstep.mail import Attachment, build_message, check_addresses, check_mail_settings, send_message
from lockstep.models import Delivery, SnapshotWeek
from lockstep.permissions import Actor, require
from lockstep.queries.plan import AT_RISK_RULE, OVERDUE_RULE, plan_items
from lockstep.queries.program import program_today, resolve_program
from lockstep.reports.weekly import WeeklyReport, weekly_report, weekly_report_pdf
from lockstep.services import audit

WEEKLY, OVERDUE = "weekly", "overdue"
# How a message leaves: lockstep.mail.send_message unless a caller passes another (tests of roles).
Sender = Callable[[EmailMessage], list[str]]


class AlreadySent(ValidationError):
    """This week's delivery went out already; pass again=True (--again) to send it once more."""


@dataclass(frozen=True)
class Sent:
    """One message sent: what, for which week, to whom; `refused`: recipients the server turned away."""

    kind: str
    period: str
    subject: str
    recipients: tuple[str, ...]
    refused: tuple[str, ...] = ()


@dataclass
class OverdueRun:
    """What `deliver_overdue` did: messages sent, addresses skipped (sent already), owners with no address."""

    period: str
    sent: list[Sent] = field(default_factory=list)
    already_sent: list[str] = field(default_factory=list)
    no_address: list[str] = field(default_factory=list)
    items: int = 0


# --- shared -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Earlier:
    """A delivery made before (plain values: it outlives the session that read it)."""

    recipients: tuple[str, ...]
    sent_at: datetime
    sent_by: str


def _sent_to(session: Session, kind: str, period: str, program: str) -> list[_Earlier]:
    rows = session.execute(
        select(Delivery.recipients, Delivery.sent_at, Delivery.sent_by)
        .where(Delivery.kind == kind, Delivery.period == period, Delivery.program_id == program)
        .order_by(Delivery.id)
    )
    return [_Earlier(tuple(r), at, by) for r, at, by in rows]


def _lock(session: Session) -> None:
    # PostgreSQL: one delivery at a time from check to record. SQLite's write session already
    # holds the database's write lock (BEGIN IMMEDIATE).
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE deliveries IN SHARE ROW EXCLUSIVE MODE"))


def _send_and_record(
    engine: Engine,
    actor: Actor,
    *,
    kind: str,
    period: str,
    program: str,
    message: EmailMessage,
    recipients: list[str],
    again: bool,
    refuse: Callable[[list[_Earlier]], str | None],
    send: Sender,
) -> Sent:
    """Under the lock: refuse a repeat, send, record the delivery and audit it, in one transaction."""
    with write_session(engine) as session:
        _lock(session)
        if not again and (why := refuse(_sent_to(session, kind, period, program))):
            raise AlreadySent(why)
        refused = send(message)
        delivered = [r for r in recipients if r not in set(refused)]
        row = Delivery(
            kind=kind,
            period=period,
            program_id=program,
            recipients=delivered,
            subject=str(message["Subject"]),
            sent_at=utcnow(),
            sent_by=actor.email,
        )
        session.add(row)
        session.flush()
        audit.append(
            session,
            actor,
            f"delivery.{kind}",
            "delivery",
            row.id,
            after={
                "program": program,
                "period": period,
                "to": delivered,
                "refused": refused,
                "subject": row.subject,
                "again": again,
            },
        )
    return Sent(kind, period, row.subject, tuple(delivered), tuple(refused))


def _mailer(settings: Settings) -> Sender:
    return lambda message: send_message(message, settings=settings)


def _when(d: _Earlier) -> str:
    return f"{d.sent_at:%Y-%m-%d %H:%M} UTC by {d.sent_by}"


# --- the weekly report ----------------------------------------------------------------------------


def last_closed_week(*, session: Session, program: str | None = None) -> date:
    """The Monday of the program's newest closed week; NotFoundError when none is closed."""
    program = resolve_program(session=session, program=program)
    monday = session.scalar(
        select(func.max(SnapshotWeek.week_start)).where(SnapshotWeek.program_id == program)
    )
    if monday is None:
        raise NotFoundError(
            f"no week of program {program!r} is closed yet, so there is no weekly report "
            "(`python -m lockstep snapshot close-week`)"
        )
    return monday


def weekly_report_text(report: WeeklyReport, attachment_name: str) -> str:
    """The e-mail body: the key numbers as text, today's overdue count, and what is attached."""
    lines = [report.heading, report.subtitle, "", "Key numbers (this week; the week before; change):"]
    for k in report.key_numbers:
        lines.append(f"- {k.measure}: {k.this_week}; {k.week_before}; {k.change}")
    lines += [
        "",
        f"Forecast: {report.forecast.summary}.",
        f"Overdue plan items today ({report.risks.as_of:%Y-%m-%d}): {len(report.risks.overdue_items)}.",
        "",
        f"The full report with tenants per stage, charts and top risks is attached ({attachment_name}).",
        "",
        "-- ",
        "Sent by Lockstep (python -m lockstep deliver weekly).",
    ]
    return "\n".join(lines) + "\n"


def deliver_weekly_report(
    *,
    engine: Engine,
    actor: Actor,
    recipients: Sequence[str],
    week: date | None = None,
    again: bool = False,
    settings: Settings | None = None,
    send: Sender | None = None,
    program: str | None = None,
) -> Sent:
    """E-mail a closed week's report (default: the newest) with its PDF; once per week unless `again`.

    The program is `program`, else `default_program`; each program's week is sent once.
    """
    require(actor, "report.deliver")
    settings = settings or get_settings()
    to = check_addresses(recipients)
    check_mail_settings(settings)  # before the report is drawn: that takes seconds

    def refuse(earlier: list[_Earlier]) -> str | None:
        if not earlier:
            return None
        last = earlier[-1]
        return (
            f"the weekly report of {period} was sent already for program {program!r} ({_when(last)}, "
            f"to {', '.join(last.recipients)}); "
            "add --again to send it once more"
        )

    with read_session(engine) as session:
        program = resolve_program(session=session, program=program)
        monday = week or last_closed_week(session=session, program=program)
        period = week_label(monday)
        if not again and (why := refuse(_sent_to(session, WEEKLY, period, program))):
            raise AlreadySent(why)
        report = weekly_report(session=session, actor=actor, week_start=monday, program=program)
    pdf = weekly_report_pdf(report)
    name = f"lockstep-weekly-{period}.pdf"
    message = build_message(
        settings=settings,
        recipients=to,
        subject=f"Lockstep weekly report: {report.title}",
        body=weekly_report_text(report, name),
        attachments=[Attachment(name, pdf)],
    )
    return _send_and_record(
        engine,
        actor,
        kind=WEEKLY,
        period=period,
        program=program,
        message=message,
        recipients=to,
        again=again,
        refuse=refuse,
        send=send or _mailer(settings),
    )


# --- overdue and at-risk plan items ----------------------------------------------------------------


def read_owner_addresses(path: Path) -> dict[str, str]:
    """An owners file (CSV `owner,email`) as {owner in the plan: address}; ValidationError names a bad row."""
    try:
        text_ = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such file") from None
    reader = csv.DictReader(text_.splitlines())
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if header != ["owner", "email"]:
        raise ValidationError(f"{path}: the first line must be 'owner,email', not {','.join(header)!r}")
    out: dict[str, str] = {}
    for n, row in enumerate(reader, start=2):
        owner, address = (list(row.values()) + ["", ""])[:2]
        owner, address = (owner or "").strip(), (address or "").strip()
        if not owner and not address:
            continue
        if not owner:
            raise ValidationError(f"{path}: row {n}: the owner is empty")
        try:
            out[owner] = check_addresses([address])[0]
        except ValidationError as exc:
            raise ValidationError(f"{path}: row {n}, owner {owner!r}: {exc}") from None
    return out


def late_items_by_address(
    items: pd.DataFrame, owners: Mapping[str, str]
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Overdue or at-risk items per address, and the owners with such items but no address.

    An owner that is an e-mail address is its own address; others are looked up in `owners`.
    Several owners may share one address (one message lists all their items).
    """
    late = items[items["overdue"] | items["at_risk"]]
    by_address: dict[str, list[int]] = {}
    missing: list[str] = []
    for i, owner in zip(late.index, late["owner"], strict=True):
        address = owners.get(owner)
        if address is None:
            try:
                address = check_addresses([owner])[0]
            except ValidationError:
                if owner not in missing:
                    missing.append(owner)
                continue
        by_address.setdefault(address, []).append(i)
    return {a: late.loc[ix] for a, ix in by_address.items()}, missing


def overdue_text(items: pd.DataFrame, today: date, public_url: str) -> str:
    """The e-mail body: the reader's overdue items, then at-risk ones, with due dates and status."""
    lines = [f"Plan items you own that need attention as of {today:%A %d %B %Y}:", ""]
    for title, part in (("Overdue", items[items["overdue"]]), ("At risk", items[~items["overdue"]])):
        if part.empty:
            continue
        lines.append(f"{title} ({len(part)}):")
        for r in part.itertuples():
            due = r.due_date
            if r.overdue:
                when = f"due {due:%Y-%m-%d}, {(today - due).days} days ago"
            elif pd.notna(due):
                when = f"due {due:%Y-%m-%d}, in {(due - today).days} days"
            else:
                when = "no due date"
            lines.append(
                f"- {r.id} {r.title} ({when}; {r.status.replace('_', ' ')}, {r.percent}% done; "
                f"owner in the plan: {r.owner})"
            )
        lines.append("")
    lines += [
        f"What the words mean: {OVERDUE_RULE}; {AT_RISK_RULE}.",
        f"Update them on the Plan page: {public_url}/plan",
        "",
        "-- ",
        "Sent by Lockstep (python -m lockstep deliver overdue).",
    ]
    return "\n".join(lines) + "\n"


def deliver_overdue(
    *,
    engine: Engine,
    actor: Actor,
    owners: Mapping[str, str] | None = None,
    again: bool = False,
    settings: Settings | None = None,
    send: Sender | None = None,
    program: str | None = None,
) -> OverdueRun:
    """E-mail each owner's overdue and at-risk plan items, one message per address, once per ISO week.

    Addresses already sent this week are skipped (all of them: AlreadySent) unless `again`;
    owners without an address are listed in the result, not guessed.
    """
    require(actor, "report.deliver")
    settings = settings or get_settings()
    check_mail_settings(settings)
    with read_session(engine) as session:
        program = resolve_program(session=session, program=program)
        today = program_today(session=session, program=program)
        items = plan_items(session=session, today=today, program=program)
        earlier = _sent_to(session, OVERDUE, week_label(week_start(today)), program)
    run = OverdueRun(week_label(week_start(today)))
    by_address, run.no_address = late_items_by_address(items, owners or {})
    run.items = sum(len(v) for v in by_address.values())
    done = {r for d in earlier for r in d.recipients}
    if not again:
        run.already_sent = sorted(a for a in by_address if a in done)
        if by_address and len(run.already_sent) == len(by_address):
            raise AlreadySent(
                f"the overdue lists of {run.period} were sent already (last {_when(earlier[-1])}); "
                "add --again to send them once more"
            )
    mail = send or _mailer(settings)
    for address, mine in by_address.items():
        if address in run.already_sent:
            continue
        n = len(mine)
        message = build_message(
            settings=settings,
            recipients=[address],
            subject=f"Lockstep: {n} plan item{'s' if n != 1 else ''} overdue or at risk ({run.period})",
            body=overdue_text(mine, today, settings.public_url),
        )

        def refuse(rows: list[_Earlier], address=address) -> str | None:
            hit = next((d for d in rows if address in d.recipients), None)
            return (
                f"the overdue list of {run.period} went to {address} already ({_when(hit)})" if hit else None
            )

        run.sent.append(
            _send_and_record(
                engine,
                actor,
                kind=OVERDUE,
                period=run.period,
                program=program,
                message=message,
                recipients=[address],
                again=again,
                refuse=refuse,
                send=mail,
            )
        )
    return run
