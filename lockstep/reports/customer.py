"""A customer status report: one tenant's migration status as a PDF an account manager can send.

It prints `lockstep.queries.customers.customer_status`, the same view the Customers page
and a share link show, so what the customer reads is decided in one place; that query
also keeps an account manager to their own tenants.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from lockstep.clock import utcnow
from lockstep.permissions import Actor
from lockstep.queries.customers import CustomerStatus, customer_status
from lockstep.queries.program import resolve_program
from lockstep.reports.render import ReportPDF, generated_line

STEP_HEADER = ("Stage", "Reached", "When", "What it means")


def _when(step, first: bool) -> str:
    if step.reached_at:
        return f"{step.reached_at:%Y-%m-%d}"
    # The first stage is where every tenant starts: reached, but with no date of its own.
    return "start" if step.reached and first else ""


def customer_report_pdf(status: CustomerStatus, *, generated_at: datetime | None = None) -> bytes:
    """The customer view of one tenant as an A4 PDF (only what the customer may see)."""
    when = generated_at or utcnow()
    pdf = ReportPDF(
        title=f"Security migration status: {status.name}",
        footer=f"Security migration status · account {status.external_id} · {generated_line(when)}",
    )
    pdf.title_block(
        status.name,
        f"Security migration status as of {status.as_of.day} {status.as_of:%B %Y} · account "
        f"{status.external_id} · {status.tier_name} · region {status.region} · {status.seats:,} seats",
    )
    for tr in status.tracks:
        pdf.heading(tr.track_name, need=45)
        pdf.paragraph(f"Now: {tr.stage_name}", bold=True)
        pdf.paragraph(tr.next_text)
        rows = [
            (s.name, "yes" if s.reached else "not yet", _when(s, i == 0), s.description)
            for i, s in enumerate(tr.steps)
        ]
        pdf.data_table(STEP_HEADER, rows, widths=(22, 11, 14, 53))

    pdf.heading("End-to-end encryption: eligibility", need=25)
    pdf.paragraph(status.e2ee_text)
    for sentence in status.blockers:
        pdf.paragraph(f"• {sentence}")

    if status.notes:
        pdf.heading("Notes from your account manager", need=25)
        pdf.data_table(
            ("Date", "Note"), [(f"{n.created_at:%Y-%m-%d}", n.body) for n in status.notes], widths=(14, 86)
        )
    pdf.ln(4)
    pdf.paragraph(f"Questions? Your account manager: {status.account_manager}")
    pdf.paragraph("This report shows this account only.", size=8, muted=True)
    return pdf.to_bytes()


def customer_report(
    *, session: Session, actor: Actor, tenant_external_id: str, program: str | None = None
) -> bytes:
    """The status PDF of one tenant in the actor's scope, on the program's tracks (default: the default one).

    NotFoundError for another manager's tenant or an unknown program.
    """
    program = resolve_program(session=session, program=program)
    return customer_report_pdf(
        customer_status(session=session, actor=actor, tenant_external_id=tenant_external_id, program=program)
    )
