"""Scheduled delivery through a real SMTP server (aiosmtpd), read back: subject, recipients, the PDF.

The weekly report's charts are swapped for tiny PNGs (drawing them is the reports' tests'
business and costs seconds); the PDF itself is the real one and is opened with pypdf.
"""

from __future__ import annotations

import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select, text

from lockstep.config import ROOT, Settings
from lockstep.db import read_session, write_session
from lockstep.demo import load_demo
from lockstep.errors import PermissionDenied, ValidationError
from lockstep.mail import DeliveryError
from lockstep.models import AuditEntry, Delivery, PlanItem
from lockstep.permissions import SYSTEM, Actor
from lockstep.plan import sync_plan_file
from lockstep.queries.program import program_today
from lockstep.reports import weekly as weekly_module
from lockstep.services.deliveries import AlreadySent, deliver_overdue, deliver_weekly_report
from lockstep.services.plan_items import update_plan_item
from lockstep.services.snapshots import backfill_weeks
from tests.smtp import free_port, smtp_server

WEEK = date(2020, 5, 18)  # 2020-W21
SENDER = "lockstep@reports.example"


@pytest.fixture
def world(engine, monkeypatch):
    """The shipped plan, a small demo, every ended week closed; charts drawn as tiny PNGs."""
    sync_plan_file(ROOT / "plan" / "90-day-plan.yaml", engine=engine)
    load_demo(engine=engine, tenants=60, seed=5, actor=SYSTEM)
    with write_session(engine) as session:
        backfill_weeks(session=session, actor=SYSTEM)
    drawn: list[int] = []

    def fake(figures, **_):
        from tests.db.test_reports import _png

        drawn.append(len(figures))
        return [_png() for _ in figures]

    monkeypatch.setattr(weekly_module, "figures_to_png", fake)
    engine.drawn = drawn
    return engine


@pytest.fixture
def plan_only(engine):
    """Just the shipped plan: its items are what the overdue lists are made of."""
    sync_plan_file(ROOT / "plan" / "90-day-plan.yaml", engine=engine)
    return engine


@pytest.fixture
def smtp():
    """(inbox, settings) for a live SMTP server on 127.0.0.1."""
    with smtp_server() as (inbox, port):
        yield inbox, Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_from=SENDER)


def _deliveries(engine) -> list[tuple]:
    with read_session(engine) as s:
        return s.execute(
            select(Delivery.kind, Delivery.period, Delivery.recipients).order_by(Delivery.id)
        ).all()


def _audit_count(engine, action: str | None = None) -> int:
    with read_session(engine) as s:
        stmt = select(func.count()).select_from(AuditEntry)
        if action:
            stmt = stmt.where(AuditEntry.action == action)
        return s.scalar(stmt)


def _sql_one(engine, sql: str, **params) -> tuple:
    with engine.connect() as conn:
        row = conn.execute(text(sql), params).one()
    return tuple(int(v) if isinstance(v, Decimal) else v for v in row)


# --- weekly ---------------------------------------------------------------------------------------


def test_the_weekly_report_arrives_with_its_pdf_and_key_numbers(world, smtp):
    inbox, settings = smtp
    sent = deliver_weekly_report(
        engine=world,
        actor=SYSTEM,
        recipients=[" Exec@Example.com", "cfo@example.com"],
        week=WEEK,
        settings=settings,
    )
    assert sent.recipients == ("exec@example.com", "cfo@example.com") and sent.refused == ()
    assert len(inbox.messages) == 1
    got = inbox.messages[0]
    assert got.mail_from == SENDER
    assert got.rcpt_tos == ["exec@example.com", "cfo@example.com"]
    msg = got.message
    assert msg["Subject"] == "Lockstep weekly report: Week 21, 2020"
    assert msg["To"] == "exec@example.com, cfo@example.com"
    assert msg["From"] == SENDER

    body = msg.get_body(preferencelist=("plain",)).get_content()
    # The GCM number counted here in SQL, not through the report's queries.
    done, total = _sql_one(
        world,
        "SELECT SUM(CASE WHEN stage_code = 'gcm_enforced' THEN n_current ELSE 0 END), SUM(n_current) "
        "FROM weekly_snapshots WHERE week_start = :w AND track_code = 'encryption'",
        w=WEEK,
    )
    assert f"- Tenants at GCM enforced: {done:,} of {total:,} ({100.0 * done / total:.1f}%);" in body
    assert "Paid tenants with E2EE enabled:" in body and "Projected 100% GCM enforced:" in body
    assert "lockstep-weekly-2020-W21.pdf" in body

    [pdf] = list(msg.iter_attachments())
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_filename() == "lockstep-weekly-2020-W21.pdf"
    reader = PdfReader(io.BytesIO(pdf.get_content()))
    assert len(reader.pages) >= 3
    flat = " ".join(" ".join(p.extract_text() for p in reader.pages).split())
    assert "Weekly report: Week 21, 2020" in flat
    assert f"{done:,} of {total:,}" in flat

    assert _deliveries(world) == [("weekly", "2020-W21", ["exec@example.com", "cfo@example.com"])]
    with read_session(world) as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "delivery.weekly")).one()
        assert (entry.actor, entry.after["period"], entry.after["to"]) == (
            SYSTEM.email,
            "2020-W21",
            ["exec@example.com", "cfo@example.com"],
        )


def test_a_week_goes_out_once_unless_again(world, smtp):
    inbox, settings = smtp
    deliver_weekly_report(
        engine=world, actor=SYSTEM, recipients=["exec@example.com"], week=WEEK, settings=settings
    )
    audit_before, drawn_before = _audit_count(world), sum(world.drawn)
    with pytest.raises(AlreadySent, match=r"2020-W21 was sent already .* add --again"):
        deliver_weekly_report(
            engine=world, actor=SYSTEM, recipients=["other@example.com"], week=WEEK, settings=settings
        )
    assert len(inbox.messages) == 1
    assert _audit_count(world) == audit_before
    assert sum(world.drawn) == drawn_before  # refused before the report was drawn
    again = deliver_weekly_report(
        engine=world, actor=SYSTEM, recipients=["other@example.com"], week=WEEK, again=True, settings=settings
    )
    assert again.recipients == ("other@example.com",)
    assert [m.rcpt_tos for m in inbox.messages] == [["exec@example.com"], ["other@example.com"]]
    assert [d[2] for d in _deliveries(world)] == [["exec@example.com"], ["other@example.com"]]
    assert _audit_count(world, "delivery.weekly") == 2


def test_without_a_week_the_newest_closed_week_goes(world, smtp):
    inbox, settings = smtp
    newest = _sql_one(world, "SELECT MAX(week_start) FROM snapshot_weeks")[0]
    newest = newest if isinstance(newest, date) else date.fromisoformat(newest)
    sent = deliver_weekly_report(
        engine=world, actor=SYSTEM, recipients=["exec@example.com"], settings=settings
    )
    year, week, _ = newest.isocalendar()
    assert sent.period == f"{year}-W{week:02d}"
    assert inbox.messages[0].message["Subject"] == f"Lockstep weekly report: Week {week}, {year}"


def test_a_send_that_fails_records_nothing_and_can_be_retried(world, smtp):
    inbox, settings = smtp
    down = Settings(smtp_host="127.0.0.1", smtp_port=free_port(), smtp_from=SENDER)
    audit_before = _audit_count(world)
    with pytest.raises(DeliveryError, match=r"could not send through the mail server 127\.0\.0\.1:\d+"):
        deliver_weekly_report(
            engine=world, actor=SYSTEM, recipients=["exec@example.com"], week=WEEK, settings=down
        )
    assert _deliveries(world) == [] and _audit_count(world) == audit_before
    deliver_weekly_report(
        engine=world, actor=SYSTEM, recipients=["exec@example.com"], week=WEEK, settings=settings
    )
    assert len(inbox.messages) == 1


def test_a_refused_recipient_is_reported_and_not_recorded_as_sent(world, smtp):
    inbox, settings = smtp
    inbox.refuse.add("gone@example.com")
    sent = deliver_weekly_report(
        engine=world,
        actor=SYSTEM,
        recipients=["exec@example.com", "gone@example.com"],
        week=WEEK,
        settings=settings,
    )
    assert (sent.recipients, sent.refused) == (("exec@example.com",), ("gone@example.com",))
    assert inbox.messages[0].rcpt_tos == ["exec@example.com"]
    assert _deliveries(world) == [("weekly", "2020-W21", ["exec@example.com"])]


def test_missing_mail_settings_and_bad_addresses_are_refused_before_drawing(world, smtp):
    _, settings = smtp
    with pytest.raises(DeliveryError, match="set LOCKSTEP_SMTP_HOST and LOCKSTEP_SMTP_FROM"):
        deliver_weekly_report(
            engine=world, actor=SYSTEM, recipients=["exec@example.com"], week=WEEK, settings=Settings()
        )
    with pytest.raises(ValidationError, match="'exec at example' is not an e-mail address"):
        deliver_weekly_report(
            engine=world, actor=SYSTEM, recipients=["exec at example"], week=WEEK, settings=settings
        )
    with pytest.raises(PermissionDenied):
        deliver_weekly_report(
            engine=world,
            actor=Actor("lead@x.example", "security_lead"),
            recipients=["exec@example.com"],
            week=WEEK,
            settings=settings,
        )
    assert world.drawn == [] and _deliveries(world) == []


# --- overdue --------------------------------------------------------------------------------------


def _late_ids_by_owner(engine, today: date) -> dict[str, set[str]]:
    """Overdue or at-risk items per owner, by the rule's words (queries/plan.py), counted here."""
    out: dict[str, set[str]] = {}
    with read_session(engine) as s:
        for item in s.scalars(select(PlanItem).where(PlanItem.retired_at.is_(None))):
            if item.status == "done":
                continue
            overdue = item.due_date is not None and item.due_date < today
            soon = item.due_date is not None and today <= item.due_date <= today + timedelta(days=7)
            at_risk = item.status in ("at_risk", "blocked") or (soon and item.percent < 50)
            if overdue or at_risk:
                out.setdefault(item.owner, set()).add(item.id)
    return out


def test_each_owner_gets_their_own_late_items_once_a_week(plan_only, smtp):
    world = plan_only
    inbox, settings = smtp
    with read_session(world) as s:
        today = program_today(session=s)
    before = _late_ids_by_owner(world, today)
    busy = next(o for o in sorted(before) if len(before[o]) >= 2)
    first = sorted(before[busy])[0]
    with read_session(world) as s:
        version = s.get(PlanItem, first).version
    with write_session(world) as s:  # one of those items done: it must not be listed any more
        update_plan_item(
            session=s, actor=SYSTEM, item_id=first, expected_version=version, status="done", done_date=today
        )
    late = _late_ids_by_owner(world, today)
    assert first not in late[busy]
    assert len(late) >= 4, late
    names = [busy] + [o for o in sorted(late) if o != busy]
    # Two owners share one address (one message lists both's items); the fourth has none.
    owners = {names[0]: "first@example.com", names[1]: "first@example.com", names[2]: "second@example.com"}

    run = deliver_overdue(engine=world, actor=SYSTEM, owners=owners, settings=settings)
    by_rcpt = {m.rcpt_tos[0]: m.message for m in inbox.messages}
    assert sorted(by_rcpt) == sorted({owners[o] for o in late if o in owners})
    for address, msg in by_rcpt.items():
        expected = set().union(*(late.get(o, set()) for o, a in owners.items() if a == address))
        body = msg.get_body(preferencelist=("plain",)).get_content()
        listed = {line.split()[1] for line in body.splitlines() if line.startswith("- ")}
        assert listed == expected, address
        n = len(expected)
        assert (
            msg["Subject"]
            == f"Lockstep: {n} plan item{'s' if n != 1 else ''} overdue or at risk ({run.period})"
        )
        assert "overdue = not done and due before today" in body
    assert all(f"- {first} " not in str(m.message) for m in inbox.messages)
    assert sorted(run.no_address) == sorted(o for o in late if o not in owners)
    assert _audit_count(world, "delivery.overdue") == len(by_rcpt)

    # The same week again: refused whole; a newly mapped owner gets theirs, the others are skipped.
    with pytest.raises(AlreadySent, match="add --again"):
        deliver_overdue(engine=world, actor=SYSTEM, owners=owners, settings=settings)
    newcomer = next(o for o in sorted(late) if o not in owners)
    more = deliver_overdue(
        engine=world, actor=SYSTEM, owners={**owners, newcomer: "new@example.com"}, settings=settings
    )
    assert [s.recipients for s in more.sent] == [("new@example.com",)]
    assert sorted(more.already_sent) == sorted(by_rcpt)
    again = deliver_overdue(engine=world, actor=SYSTEM, owners=owners, settings=settings, again=True)
    assert len(again.sent) == len(by_rcpt)
    assert len(inbox.messages) == 2 * len(by_rcpt) + 1


def test_an_owner_that_is_an_address_needs_no_owners_file(plan_only, smtp):
    world = plan_only
    inbox, settings = smtp
    with write_session(world) as s:
        item = s.scalars(select(PlanItem).where(PlanItem.status != "done").order_by(PlanItem.id)).first()
        item.owner = "Dana.Lee@Lockstep.example"
        item.status = "blocked"
        item_id = item.id
    run = deliver_overdue(engine=world, actor=SYSTEM, settings=settings)
    assert [s.recipients for s in run.sent] == [("dana.lee@lockstep.example",)]
    body = inbox.messages[0].message.get_body(preferencelist=("plain",)).get_content()
    assert f"- {item_id} " in body
