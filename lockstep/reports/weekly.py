"""The executive weekly report: one closed week's numbers, charts and risks, as PDF or HTML.

Every number is read through lockstep.queries.weekly, the same queries the Weekly page
draws from, and every chart is the page's own figure: the report is the page on paper,
not a second opinion. Week-over-week changes compare the chosen week with the closed
week before it. Top risks are about today (live state), as on the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pandas as pd
import plotly.graph_objects as go
from sqlalchemy.orm import Session

from lockstep.charts import stage_label
from lockstep.charts.weekly import (
    e2ee_adoption_chart,
    forecast_chart,
    stage_mix_chart,
    week_title,
    weekly_burnup_chart,
)
from lockstep.clock import utcnow, week_label
from lockstep.errors import NotFoundError
from lockstep.forecast import Forecast
from lockstep.permissions import Actor
from lockstep.queries import weekly as q
from lockstep.queries.program import program_today, program_track, program_window, resolve_program
from lockstep.queries.rollout import tracks
from lockstep.reports.render import (
    CHART_WIDTH,
    ReportPDF,
    chart_height,
    esc,
    figures_to_png,
    generated_line,
    html_document,
    html_image,
    html_table,
)

RESTATED_ROWS = 15
KEY_HEADER = ("Measure", "This week", "Week before", "Change")
STAGE_HEADER = ("Stage", "This week", "Week before", "Change")


@dataclass(frozen=True)
class KeyNumber:
    """One headline number: its value at the week's end, the week before's, and the change."""

    measure: str
    this_week: str
    week_before: str
    change: str


@dataclass(frozen=True)
class StageRow:
    """Tenants at one stage of a track at the end of the week and of the week before."""

    track: str
    stage: str
    label: str
    this_week: int
    week_before: int | None

    @property
    def change(self) -> int | None:
        """This week minus the week before (None when there is no week before)."""
        return None if self.week_before is None else self.this_week - self.week_before


@dataclass(frozen=True)
class WeeklyReport:
    """Everything the weekly report prints, gathered once from the queries."""

    week_start: date
    week_before: date | None
    program_name: str
    track_names: dict[str, str]
    key_numbers: tuple[KeyNumber, ...]
    stages: tuple[StageRow, ...]
    forecast: Forecast
    restated: pd.DataFrame
    risks: q.TopRisks
    figures: dict[str, go.Figure]
    generated_at: datetime = field(default_factory=utcnow)

    @property
    def title(self) -> str:
        """'Week 21, 2020' (the ISO week the report is about)."""
        year, week, _ = self.week_start.isocalendar()
        return f"Week {week}, {year}"

    @property
    def week_label(self) -> str:
        """'2020-W21'."""
        return week_label(self.week_start)

    @property
    def heading(self) -> str:
        """The document's title line."""
        return f"Weekly report: {self.title}"

    @property
    def subtitle(self) -> str:
        """Which days, what the numbers are, and against which week."""
        sunday = self.week_start + timedelta(days=6)
        against = (
            f"compared with {week_title(self.week_before)}"
            if self.week_before
            else "the first closed week: nothing to compare with"
        )
        return (
            f"{self.program_name} · {self.week_label}, Monday {_day(self.week_start)} to Sunday "
            f"{_day(sunday)} · numbers at the end of the week, {against}"
        )

    @property
    def footer(self) -> str:
        """The running footer."""
        return f"Lockstep weekly report {self.week_label} · {generated_line(self.generated_at)}"


def _day(d: date) -> str:
    return f"{d.day} {d:%B %Y}"


def _pts(now: float | None, before: float | None) -> str:
    if now is None or before is None or pd.isna(now) or pd.isna(before):
        return "—"
    return f"{now - before:+.1f} pts"


def _signed(n: int | None) -> str:
    return "—" if n is None else f"{n:+,}"


def _closed_week(session: Session, week_start: date, program: str) -> date | None:
    """The program's closed week before `week_start` (None: it is the first); NotFoundError if not closed."""
    weeks = list(q.closed_weeks(session=session, program=program)["week_start"])
    if week_start not in weeks:
        shown = f"{week_label(weeks[0])} to {week_label(weeks[-1])}" if weeks else "none yet"
        raise NotFoundError(
            f"week {week_label(week_start)} is not closed in program {program!r}, so it has no report "
            f"(closed weeks: {shown}); close it with `python -m lockstep snapshot close-week --week "
            f"{week_label(week_start)} --program {program}`"
        )
    i = weeks.index(week_start)
    return weeks[i - 1] if i > 0 else None


def _stage_rows(mix: pd.DataFrame, track: str, week: date, before: date | None) -> list[StageRow]:
    now = mix[mix["week_start"] == week]
    prev = mix[mix["week_start"] == before].set_index("stage_code")["n_current"] if before else None
    return [
        StageRow(
            track,
            r.stage_code,
            stage_label(r.stage_code),
            int(r.n_current),
            None if prev is None else int(prev.get(r.stage_code, 0)),
        )
        for r in now.sort_values(["position", "stage_code"]).itertuples()
    ]


def _share(done: int, total: int) -> str:
    return f"{done:,} of {total:,} ({100.0 * done / total:.1f}%)" if total else f"{done:,} of 0"


def _share_number(measure: str, now: tuple[int, int], prev: tuple[int, int] | None) -> KeyNumber:
    """A 'done of total (pct)' number with its change in percentage points and in tenants."""
    if prev is None:
        return KeyNumber(measure, _share(*now), "—", "—")
    pct = [100.0 * d / t if t else None for d, t in (now, prev)]
    return KeyNumber(measure, _share(*now), _share(*prev), f"{_pts(*pct)} ({_signed(now[0] - prev[0])})")


def _key_numbers(
    forecast: Forecast,
    before_forecast: Forecast | None,
    adoption: pd.DataFrame,
    burnup: pd.DataFrame,
    week: date,
    before: date | None,
) -> list[KeyNumber]:
    rows: list[KeyNumber] = []
    hist = {p.week_start: (p.done, p.total) for p in forecast.history}
    if week in hist:
        rows.append(_share_number("Tenants at GCM enforced", hist[week], hist.get(before)))
    paid = {
        w: (int(e), int(p))
        for w, e, p in zip(
            adoption["week_start"], adoption["enabled_current"], adoption["paid_current"], strict=True
        )
    }
    if paid.get(week, (0, 0))[1]:
        rows.append(_share_number("Paid tenants with E2EE enabled", paid[week], paid.get(before)))
    plan = {
        w: (0 if pd.isna(d) else int(d), int(p))
        for w, d, p in zip(burnup["week_start"], burnup["done"], burnup["planned"], strict=True)
    }
    if week in plan:
        (done, due), prev = plan[week], plan.get(before)
        rows.append(
            KeyNumber(
                "Plan items done / due by the week's end",
                f"{done} / {due}",
                "—" if prev is None else f"{prev[0]} / {prev[1]}",
                "—" if prev is None else f"{_signed(done - prev[0])} done, {_signed(due - prev[1])} due",
            )
        )
    rows.append(
        KeyNumber(
            "Projected 100% GCM enforced",
            _projected(forecast),
            _projected(before_forecast) if before_forecast else "—",
            _projection_change(forecast, before_forecast),
        )
    )
    return rows


def _projected(f: Forecast) -> str:
    if f.status == "done":
        return f"reached {f.projected:%Y-%m-%d}"
    if f.status != "projected":
        return "never at this pace" if f.status == "never" else "not yet known"
    late = f.days_late
    if late is None:
        return f"{f.projected:%Y-%m-%d}"
    against = "on the deadline" if late == 0 else f"{late} days late" if late > 0 else f"{-late} days early"
    return f"{f.projected:%Y-%m-%d} ({against})"


def _projection_change(now: Forecast, before: Forecast | None) -> str:
    if before is None or now.projected is None or before.projected is None:
        return "—"
    days = (now.projected - before.projected).days
    if days == 0:
        return "no change"
    return f"{abs(days)} day{'s' if abs(days) != 1 else ''} {'later' if days > 0 else 'sooner'}"


def weekly_report(
    *, session: Session, actor: Actor, week_start: date, program: str | None = None
) -> WeeklyReport:
    """Gather the program's report for the closed ISO week starting `week_start`; NotFoundError if not closed.

    The program is `program` (default: `default_program`; NotFoundError when unknown). Top
    risks are scoped to `actor` (an account manager would see only their own tenants).
    """
    program = resolve_program(session=session, program=program)
    before = _closed_week(session, week_start, program)
    window = program_window(session=session, program=program)
    track_rows = tracks(session=session, program=program)
    names = dict(zip(track_rows["code"], track_rows["name"], strict=True))
    # A program without an encryption or E2EE track gets empty headlines for it ("" is no track).
    enc = program_track(session=session, kind=q.ENCRYPTION, program=program) or ""
    e2ee = program_track(session=session, kind=q.E2EE, program=program) or ""
    forecast = q.encryption_forecast(session=session, as_of_week=week_start, track=enc)
    before_forecast = q.encryption_forecast(session=session, as_of_week=before, track=enc) if before else None
    adoption = q.e2ee_adoption_by_week(session=session, as_of_week=week_start, track=e2ee)
    burnup = q.plan_burnup(session=session, as_of_week=week_start, program=program)
    mixes = {t: q.stage_mix_by_week(session=session, track=t, as_of_week=week_start) for t in names}
    stages = [row for t, mix in mixes.items() for row in _stage_rows(mix, t, week_start, before)]
    figures = {
        "forecast": forecast_chart(forecast, track_name="GCM enforced"),
        **{f"mix_{t}": stage_mix_chart(mix, track_name=names[t]) for t, mix in mixes.items()},
        "e2ee_adoption": e2ee_adoption_chart(adoption),
        "burnup": weekly_burnup_chart(burnup),
    }
    return WeeklyReport(
        week_start=week_start,
        week_before=before,
        program_name=window.name if window else "Lockstep",
        track_names=names,
        key_numbers=tuple(_key_numbers(forecast, before_forecast, adoption, burnup, week_start, before)),
        stages=tuple(stages),
        forecast=forecast,
        restated=q.restated_numbers(session=session, as_of_week=week_start, program=program),
        risks=q.top_risks(
            session=session,
            actor=actor,
            as_of=program_today(session=session, program=program),
            program=program,
        ),
        figures=figures,
    )


# --- the same content, two ways ---------------------------------------------------------------


def _key_rows(report: WeeklyReport) -> list[tuple[str, ...]]:
    return [(k.measure, k.this_week, k.week_before, k.change) for k in report.key_numbers]


def _stage_table_rows(report: WeeklyReport, track: str) -> list[tuple[str, ...]]:
    return [
        (
            s.label,
            f"{s.this_week:,}",
            "—" if s.week_before is None else f"{s.week_before:,}",
            _signed(s.change),
        )
        for s in report.stages
        if s.track == track
    ]


def _restated_rows(report: WeeklyReport) -> list[tuple[str, ...]]:
    r = report.restated.head(RESTATED_ROWS)
    return [
        (w, report.track_names.get(t, t), stage_label(s), f"{rep:,}", f"{cur:,}", f"{chg:+,}")
        for w, t, s, rep, cur, chg in zip(
            r["week_label"],
            r["track_code"],
            r["stage_code"],
            r["n_reported"],
            r["n_current"],
            r["change"],
            strict=True,
        )
    ]


def _restated_intro(report: WeeklyReport) -> str:
    n = report.restated["week_label"].nunique()
    more = len(report.restated) - RESTATED_ROWS
    return (
        f"{n} week(s) up to this one changed after they closed: events recorded later were back-dated "
        "into them. Charts and numbers above show the current values."
        + (f" The first {RESTATED_ROWS} changes of {len(report.restated)} are listed." if more > 0 else "")
    )


OVERDUE_HEADER = ("Item", "Title", "Owner", "Due", "Days overdue", "Status")
TIER_HEADER = ("Tier", "Blocked", "Rolled back", "Legacy after deadline", "Total")
LARGEST_HEADER = ("Tenant", "Name", "Tier", "Seats", "Why stuck", "Since", "Account manager")


def _overdue_rows(risks: q.TopRisks) -> list[tuple]:
    o = risks.overdue_items
    return [
        (i, t, ow, f"{d:%Y-%m-%d}", n, s.replace("_", " "))
        for i, t, ow, d, n, s in zip(
            o["id"], o["title"], o["owner"], o["due_date"], o["days_overdue"], o["status"], strict=True
        )
    ]


def _tier_rows(risks: q.TopRisks) -> list[tuple]:
    t = risks.stuck_by_tier
    return [
        (name, f"{b:,}", f"{r:,}", f"{n:,}", f"{tot:,}")
        for name, b, r, n, tot in zip(
            t["tier_name"], t["blocked"], t["rolled_back"], t["not_started_late"], t["total"], strict=True
        )
    ]


def _largest_rows(risks: q.TopRisks) -> list[tuple]:
    t = risks.largest_stuck
    return [
        (e, n, tier, f"{seats:,}", why, f"{since:%Y-%m-%d}" if pd.notna(since) else "", am)
        for e, n, tier, seats, why, since, am in zip(
            t["external_id"],
            t["name"],
            t["tier"],
            t["seats"],
            t["reason"],
            t["since"],
            t["account_manager"],
            strict=True,
        )
    ]


def _stuck_total(risks: q.TopRisks) -> int:
    return int(risks.stuck_by_tier["total"].sum()) if not risks.stuck_by_tier.empty else 0


CHART_ALTS = {
    "forecast": "Forecast: share of tenants at GCM enforced per week, projected to 100%, and the deadline",
    "e2ee_adoption": "Paid tenants with E2EE enabled, percent, per week",
    "burnup": "Plan burn-up: items due and done per week",
}


def _alt(key: str, report: WeeklyReport) -> str:
    if key.startswith("mix_"):
        return f"{report.track_names.get(key[4:], key[4:])}: tenants per stage at each week's end"
    return CHART_ALTS.get(key, key)


def weekly_report_pdf(report: WeeklyReport, images: dict[str, bytes] | None = None) -> bytes:
    """The report as an A4 PDF (charts drawn now unless `images` from weekly_report_images is given)."""
    images = images or weekly_report_images(report)
    pdf = ReportPDF(title=f"Lockstep {report.heading}", footer=report.footer)
    pdf.title_block(report.heading, report.subtitle)
    pdf.heading("Key numbers", need=40)
    pdf.data_table(KEY_HEADER, _key_rows(report), widths=(34, 24, 24, 18))
    pdf.paragraph(f"Forecast: {report.forecast.summary}.", size=9, muted=True)
    for track, name in report.track_names.items():
        pdf.heading(f"{name}: tenants per stage", need=40)
        pdf.data_table(
            STAGE_HEADER, _stage_table_rows(report, track), widths=(40, 20, 20, 20), right=(1, 2, 3)
        )
    if not report.restated.empty:
        pdf.heading("Restated numbers", need=40)
        pdf.paragraph(_restated_intro(report), size=9)
        pdf.data_table(
            ("Week", "Track", "Stage", "Reported", "Now", "Change"),
            _restated_rows(report),
            widths=(16, 34, 24, 14, 14, 14),
            right=(3, 4, 5),
            size=8,
        )

    pdf.add_page()
    pdf.heading("Charts")
    for key, fig in report.figures.items():
        pdf.chart(images[key], width_px=CHART_WIDTH, height_px=chart_height(fig))

    risks = report.risks
    pdf.add_page()
    pdf.heading(f"Top risks today ({risks.as_of:%Y-%m-%d})")
    pdf.paragraph(
        "Risks are about today, not the chosen week: what is late and who is stuck now.", size=9, muted=True
    )
    pdf.paragraph(
        f"Overdue plan items: {len(risks.overdue_items)} (not done and due before today)", bold=True
    )
    if not risks.overdue_items.empty:
        pdf.data_table(
            OVERDUE_HEADER, _overdue_rows(risks), widths=(10, 40, 20, 14, 10, 12), right=(4,), size=8
        )
    pdf.paragraph(
        f"Stuck tenants: {_stuck_total(risks):,} (blocked, rolled back, or still on the legacy "
        "cipher after the deadline)",
        bold=True,
    )
    if not risks.stuck_by_tier.empty:
        pdf.data_table(TIER_HEADER, _tier_rows(risks), widths=(24, 16, 16, 24, 14), right=(1, 2, 3, 4))
    if not risks.largest_stuck.empty:
        pdf.paragraph(f"The {len(risks.largest_stuck)} largest stuck tenants, by seats", bold=True)
        pdf.data_table(
            LARGEST_HEADER, _largest_rows(risks), widths=(12, 26, 13, 9, 20, 15, 36), right=(3,), size=7.5
        )
    return pdf.to_bytes()


def weekly_report_html(report: WeeklyReport, images: dict[str, bytes] | None = None) -> bytes:
    """The report as one self-contained HTML page (charts inlined as PNG, all text escaped)."""
    images = images or weekly_report_images(report)
    risks = report.risks
    body = [
        f"<h1>{esc(report.heading)}</h1>",
        f'<p class="sub">{esc(report.subtitle)}</p>',
        "<h2>Key numbers</h2>",
        html_table(KEY_HEADER, _key_rows(report)),
        f'<p class="muted">Forecast: {esc(report.forecast.summary)}.</p>',
    ]
    for track, name in report.track_names.items():
        body += [
            f"<h2>{esc(name)}: tenants per stage</h2>",
            html_table(STAGE_HEADER, _stage_table_rows(report, track), right=(1, 2, 3)),
        ]
    if not report.restated.empty:
        body += [
            "<h2>Restated numbers</h2>",
            f"<p>{esc(_restated_intro(report))}</p>",
            html_table(
                ("Week", "Track", "Stage", "Reported", "Now", "Change"),
                _restated_rows(report),
                right=(3, 4, 5),
            ),
        ]
    body.append("<h2>Charts</h2>")
    body += [html_image(images[key], _alt(key, report)) for key in report.figures]
    body += [
        f"<h2>Top risks today ({risks.as_of:%Y-%m-%d})</h2>",
        '<p class="muted">Risks are about today, not the chosen week: what is late and who is stuck now.</p>',
        f"<p><strong>Overdue plan items: {len(risks.overdue_items)}</strong> "
        "(not done and due before today)</p>",
    ]
    if not risks.overdue_items.empty:
        body.append(html_table(OVERDUE_HEADER, _overdue_rows(risks), right=(4,)))
    body.append(
        f"<p><strong>Stuck tenants: {_stuck_total(risks):,}</strong> (blocked, rolled back, or still "
        "on the legacy cipher after the deadline)</p>"
    )
    if not risks.stuck_by_tier.empty:
        body.append(html_table(TIER_HEADER, _tier_rows(risks), right=(1, 2, 3, 4)))
    if not risks.largest_stuck.empty:
        body += [
            f"<p><strong>The {len(risks.largest_stuck)} largest stuck tenants, by seats</strong></p>",
            html_table(LARGEST_HEADER, _largest_rows(risks), right=(3,)),
        ]
    return html_document(title=f"Lockstep {report.heading}", body=body, footer=report.footer)


def weekly_report_images(report: WeeklyReport) -> dict[str, bytes]:
    """Every chart of the report as PNG, drawn in one browser (pass to both renderers to draw once)."""
    keys = list(report.figures)
    return dict(zip(keys, figures_to_png([report.figures[k] for k in keys]), strict=True))


def weekly_report_file(
    *, session: Session, actor: Actor, week_start: date, kind: str, program: str | None = None
) -> bytes:
    """The program's report for a closed week as 'pdf' or 'html' bytes."""
    report = weekly_report(session=session, actor=actor, week_start=week_start, program=program)
    if kind == "pdf":
        return weekly_report_pdf(report)
    if kind == "html":
        return weekly_report_html(report)
    raise ValueError(f"report format {kind!r}: use pdf or html")
