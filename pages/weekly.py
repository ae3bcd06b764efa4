"""Weekly: the picture an executive reads in a minute, from closed weeks only."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from lockstep.charts import stage_label
from lockstep.charts.weekly import (
    e2ee_adoption_chart,
    forecast_chart,
    stage_mix_chart,
    week_title,
    weekly_burnup_chart,
)
from lockstep.db import write_transaction
from lockstep.errors import LockstepError
from lockstep.forecast import forecast_headline, forecast_milestones
from lockstep.labels import deadline_delta, done_of_due, fmt_date, fmt_int, fmt_pct, points_delta
from lockstep.permissions import can
from lockstep.queries import rollout as rollout_queries
from lockstep.queries import weekly as q
from lockstep.queries.names import display_names
from lockstep.queries.program import program_today, program_track
from lockstep.services.snapshots import backfill_weeks
from lockstep.tables import largest_stuck_table, overdue_items_table, stuck_by_tier_table
from lockstep.ui.data import cached_query, clear_after_write, engine
from lockstep.ui.programs import current_program
from lockstep.ui.reports import weekly_report_buttons
from lockstep.ui.session import current_actor

actor = current_actor()
may_close = can(actor, "snapshot.close")
st.title("Weekly")


def close_weeks_button(label: str) -> None:
    """Close every week that has ended (security lead, admin); reports what it closed."""
    if not st.button(label, key="weekly_backfill", icon=":material/event_available:"):
        return
    try:
        closed = write_transaction(
            lambda session: backfill_weeks(session=session, actor=actor, program=program), engine=engine()
        )
    except LockstepError as exc:
        st.error(str(exc))
        return
    clear_after_write()
    st.session_state["weekly_closed_msg"] = (
        f"Closed {len(closed)} week(s): {', '.join(r.week_label for r in closed)}."
        if closed else "Every week that has ended is already closed."
    )
    st.rerun()


if msg := st.session_state.pop("weekly_closed_msg", None):
    st.success(msg)

program = current_program()
ENCRYPTION = cached_query(program_track, kind="encryption", program=program) or ""
E2EE = cached_query(program_track, kind="e2ee", program=program) or ""
weeks = cached_query(q.closed_weeks, program=program)
if weeks.empty:
    st.info(
        "No week has been closed yet, so there is no weekly picture. A week's numbers are frozen "
        "when it is closed. Close every week that has ended with "
        "`python -m lockstep snapshot backfill`, or one week with "
        "`python -m lockstep snapshot close-week --week 2020-W21`."
    )
    if may_close:
        close_weeks_button("Close all weeks that have ended")
    else:
        st.caption("A security lead or an admin can close weeks.")
    st.stop()

mondays = list(weeks["week_start"])
as_of_week = st.selectbox(
    "As of week", mondays, index=len(mondays) - 1, format_func=week_title, key="weekly_week",
    help="Every number below is as of the end of this week (Monday 00:00 UTC), as frozen when it closed "
    "and restated since by back-dated events.",
)
st.caption(
    f"{len(mondays)} closed week(s), {week_title(mondays[0])} to {week_title(mondays[-1])}. "
    "Counts are at the end of each week; a * marks a week changed after it closed."
)
weekly_report_buttons(actor, as_of_week, program)

tracks = cached_query(rollout_queries.tracks, program=program)
names = dict(zip(tracks["code"], tracks["name"], strict=True))
forecast = cached_query(q.encryption_forecast, as_of_week=as_of_week, track=ENCRYPTION)
adoption = cached_query(q.e2ee_adoption_by_week, as_of_week=as_of_week, track=E2EE)
burnup = cached_query(q.plan_burnup, as_of_week=as_of_week, program=program)

# --- the headline ----------------------------------------------------------------------
cols = st.columns(3)
hist = forecast.history
if hist:
    cols[0].metric(
        "GCM enforced", fmt_pct(hist[-1].pct),
        **points_delta(hist[-1].pct - hist[-2].pct if len(hist) > 1 else None, unit="pts on the week"),
        help=f"{fmt_int(hist[-1].done)} of {fmt_int(hist[-1].total)} tenants at the end of the week",
    )
if not adoption.empty and adoption["pct_current"].notna().iloc[-1]:
    last = adoption.iloc[-1]
    prev = adoption["pct_current"].iloc[-2] if len(adoption) > 1 else None
    cols[1].metric(
        "Paid tenants with E2EE", fmt_pct(last["pct_current"]),
        **points_delta(None if prev is None else last["pct_current"] - prev, unit="pts on the week"),
        help=f"{fmt_int(last['enabled_current'])} of {fmt_int(last['paid_current'])} paid tenants",
    )
if not burnup.empty:
    last = burnup.iloc[-1]
    cols[2].metric("Plan items done", **done_of_due(int(last["done"]), int(last["planned"])),
                   help="Items done by the end of the week, and items due by then (some finish early)")

# When the bulk is done, and the long tail apart: a few stuck tenants must not hide 95%.
if ENCRYPTION:
    cols = st.columns(3)
    for col, milestone in zip(cols, forecast_milestones(forecast), strict=True):
        col.metric(
            milestone.label, fmt_date(milestone.on) if milestone.on else milestone.missing,
            **deadline_delta(None if milestone.on is None or forecast.deadline is None
                             else (milestone.on - forecast.deadline).days),
            help=milestone.help,
        )
    st.caption(forecast_headline(forecast))
else:
    st.info("This program has no encryption track, so there is no cut-over forecast.")

# --- the running week: live, never frozen ------------------------------------------------------
running = cached_query(q.running_week, program=program)
if running is not None:
    with st.container(border=True, key="weekly_running"):
        sunday = running.week_start + timedelta(days=6)
        st.markdown(f"**{running.week_label} so far: running week, not closed**")
        st.caption(
            f"{week_title(running.week_start)} runs to {sunday:%a %b} {sunday.day}; today is "
            f"{running.today:%Y-%m-%d}. These numbers are live and move with every event until the week "
            "ends and is closed; they are not part of the closed weeks above."
        )
        so_far = st.columns(3)
        if running.enforced_pct is not None:
            so_far[0].metric("GCM enforced so far", f"{running.enforced_pct:.1f}%",
                             help=f"{running.enforced:,} of {running.on_encryption:,} tenants now")
        if running.e2ee_pct is not None:
            so_far[1].metric("Paid tenants with E2EE so far", f"{running.e2ee_pct:.1f}%",
                             help=f"{running.e2ee_enabled:,} of {running.paid:,} paid tenants now")

if ENCRYPTION:
    st.plotly_chart(forecast_chart(forecast, track_name="GCM enforced"), key="weekly_forecast")

# --- stage mix, E2EE adoption, burn-up -------------------------------------------------------
track = st.radio("Track", list(names), format_func=names.get, horizontal=True, key="weekly_track")
mix = cached_query(q.stage_mix_by_week, track=track, as_of_week=as_of_week)
st.plotly_chart(stage_mix_chart(mix, track_name=names[track]), key="weekly_mix")
left, right = st.columns(2)
left.plotly_chart(e2ee_adoption_chart(adoption), key="weekly_e2ee")
right.plotly_chart(weekly_burnup_chart(burnup), key="weekly_burnup")

# --- restatements ------------------------------------------------------------------------
restated = cached_query(q.restated_numbers, as_of_week=as_of_week, program=program)
st.subheader("Restated numbers")
if restated.empty:
    st.caption("No number up to this week has changed since its week closed.")
else:
    st.warning(
        f"{restated['week_label'].nunique()} week(s) up to this one changed after they closed: "
        "events recorded later were back-dated into them. Charts show the current numbers."
    )
    table = restated.assign(
        track=[names.get(t, t) for t in restated["track_code"]],
        stage=[stage_label(s) for s in restated["stage_code"]],
    )
    st.dataframe(
        table[["week_label", "track", "stage", "n_reported", "n_current", "change"]],
        hide_index=True, key="weekly_restated",
        column_config={"week_label": "Week", "track": "Track", "stage": "Stage", "n_reported": "Reported",
                       "n_current": "Now",
                       "change": st.column_config.NumberColumn("Change", format="%+d")},
    )

# --- top risks (today, not the chosen week) --------------------------------------------------
today = cached_query(program_today, program=program)
risks = cached_query(q.top_risks, actor=actor, as_of=today, program=program)
st.subheader(f"Top risks today ({fmt_date(today)})")
st.caption("Risks are about today, whatever week is chosen above: what is late and who is stuck now.")
st.markdown(f"**Overdue plan items: {len(risks.overdue_items)}** (not done and due before today)")
names_of = cached_query(display_names)
st.dataframe(
    overdue_items_table(risks.overdue_items), hide_index=True, key="weekly_overdue",
    column_config={"Item": st.column_config.TextColumn(width=45),
                   "Title": st.column_config.TextColumn(width=300),
                   "Owner": st.column_config.TextColumn(width=170),
                   "Due": st.column_config.TextColumn(width=90),
                   "Overdue": st.column_config.TextColumn(width=70),
                   "Status": st.column_config.TextColumn(width=110)},
)
by_tier = risks.stuck_by_tier
st.markdown(f"**Stuck tenants: {fmt_int(by_tier['total'].sum())}** (blocked, rolled back, "
            "or still on the legacy cipher after the deadline)")
st.dataframe(stuck_by_tier_table(by_tier), hide_index=True, key="weekly_stuck_tiers")
st.markdown(f"**The {len(risks.largest_stuck)} largest stuck tenants, by seats**")
st.dataframe(
    largest_stuck_table(risks.largest_stuck, names_of), hide_index=True, key="weekly_largest",
    column_config={"Tenant": st.column_config.TextColumn(width=230),
                   "Tier": st.column_config.TextColumn(width=85),
                   "Seats": st.column_config.TextColumn(width=60),
                   "Why stuck": st.column_config.TextColumn(width=170),
                   "Since": st.column_config.TextColumn(width=90),
                   "Account manager": st.column_config.TextColumn(width=140)},
)

if may_close:
    with st.expander("Close weeks"):
        st.caption("Freeze the numbers of every week that has ended and is not closed yet.")
        close_weeks_button("Close the weeks that have ended")
