"""Download buttons for the reports: the weekly report on the Weekly page, a status PDF on Customers.

A report draws its charts in a headless browser, which takes seconds, so the file is
made only when the button is clicked (Streamlit's deferred download: `data` is a
callable run on click), never on every rerun of the page. `on_click="ignore"`: a
download does not rerun the page either.
"""

from __future__ import annotations

from datetime import date

import streamlit as st

from lockstep.clock import week_label
from lockstep.permissions import Actor
from lockstep.reports.customer import customer_report
from lockstep.reports.weekly import weekly_report_file
from lockstep.ui.data import run_query

MIME = {"pdf": "application/pdf", "html": "text/html"}


def _weekly(actor: Actor, week_start: date, kind: str, program: str | None):
    return lambda: run_query(
        weekly_report_file, actor=actor, week_start=week_start, kind=kind, program=program
    )


def weekly_report_buttons(actor: Actor, week_start: date, program: str | None = None) -> None:
    """PDF and HTML download buttons for the program's weekly report of the closed week `week_start`."""
    label = week_label(week_start)
    pdf_col, html_col, _ = st.columns([1, 1, 2])
    for col, kind in ((pdf_col, "pdf"), (html_col, "html")):
        col.download_button(
            f"Weekly report ({kind.upper()})",
            _weekly(actor, week_start, kind, program),
            file_name=f"lockstep-weekly-{label}.{kind}",
            mime=MIME[kind],
            icon=":material/download:",
            on_click="ignore",
            key=f"weekly_report_{kind}",
            help=f"The report for {label}: key numbers, charts, top risks. Takes a few seconds.",
        )


def customer_report_button(actor: Actor, tenant_external_id: str, program: str | None = None) -> None:
    """A download button for one tenant's status report (PDF), the program's tracks, in the actor's scope."""
    st.download_button(
        "Download this status (PDF)",
        lambda: run_query(
            customer_report, actor=actor, tenant_external_id=tenant_external_id, program=program
        ),
        file_name=f"status-{tenant_external_id}.pdf",
        mime=MIME["pdf"],
        icon=":material/picture_as_pdf:",
        on_click="ignore",
        key="customers_pdf",
        help="A PDF of this status to send the customer: this tenant only.",
    )
