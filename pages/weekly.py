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
from lockstep.permissions import can
from lockstep.queries import rollout as rollout_queries
from lockstep.queries import weekly as q
from lockstep.queries.program import program_today
from lockstep.services.snapshots import backfill_weeks
from lockstep.ui.data import cached_query, clear_after_write, engine
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
            lambda session: backfill_weeks(session=session, actor=actor), engine=engine()
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

weeks = cached_query(q.closed_weeks)
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
weekly_report_buttons(actor, as_of_week)

tracks = cached_query(rollout_queries.tracks)
names = dict(zip(tracks["code"], tracks["name"], strict=True))
forecast = cached_query(q.encryption_forecast, as_of_week=as_of_week)
adoption = cached_query(q.e2ee_adoption_by_week, as_of_week=as_of_week)
burnup = cached_query(q.plan_burnup, as_of_week=as_of_week)

# --- the headline ----------------------------------------------------------------------
cols = st.columns(4)
hist = forecast.history
if hist:
    prev = hist[-2].pct if len(hist) > 1 else None
    cols[0].metric(
        "GCM enforced", f"{hist[-1].pct:.1f}%",
        delta=None if prev is None else f"{hist[-1].pct - prev:+.1f} pts on the week",
        help=f"{hist[-1].done:,} of {hist[-1].total:,} tenants at the end of the week",
    )
if not adoption.empty and adoption["pct_current"].notna().iloc[-1]:
    last = adoption.iloc[-1]
    prev = adoption["pct_current"].iloc[-2] if len(adoption) > 1 else None
    cols[1].metric(
        "Paid tenants with E2EE", f"{last['pct_current']:.1f}%",
        delta=None if prev is None else f"{last['pct_current'] - prev:+.1f} pts on the week",
        help=f"{int(last['enabled_current']):,} of {int(last['paid_current']):,} paid tenants",
    )
if not burnup.empty:
    last = burnup.iloc[-1]
    cols[2].metric("Plan items done / due", f"{int(last['done']):,} / {int(last['planned']):,}",
                   help="Items done by the end of the week, and items due by then (some finish early)")
if forecast.status == "projected":
    late = forecast.days_late
    slip = None if late is None else f"{late} days late" if late > 0 else f"{-late} days early"
    cols[3].metric("Projected 100% GCM enforced", f"{forecast.projected:%Y-%m-%d}", delta=slip,
                   delta_color="inverse" if late is not None and late > 0 else "normal")
elif forecast.status == "done":
    cols[3].metric("100% GCM enforced", f"{forecast.projected:%Y-%m-%d}")
else:
    cols[3].metric("Projected 100% GCM enforced", "never" if forecast.status == "never" else "unknown",
                   help=forecast.summary)

# --- the running week: live, never frozen ------------------------------------------------------
running = cached_query(q.running_week)
if running is not None:
    with st.container(border=True, key="weekly_running"):
        sunday = running.week_start + timedelta(days=6)
        st.markdown(f"**{running.week_label} so far: running week, not closed**")
        st.caption(
            f"{week_title(running.week_start)} runs to {sunday:%a %b} {sunday.day}; today is "
            f"{running.today:%Y-%m-%d}. These numbers are live and move with every event until the week "
            "ends and is closed; they are not part of the closed weeks above."
        )
        so_far = st.columns(4)
        if running.enforced_pct is not None:
            so_far[0].metric("GCM enforced so far", f"{running.enforced_pct:.1f}%",
                             help=f"{running.enforced:,} of {running.on_encryption:,} tenants now")
        if running.e2ee_pct is not None:
            so_far[1].metric("Paid tenants with E2EE so far", f"{running.e2ee_pct:.1f}%",
                             help=f"{running.e2ee_enabled:,} of {running.paid:,} paid tenants now")

st.plotly_chart(forecast_chart(forecast, track_name="GCM enforced"), key="weekly_forecast")

# --- stage mix, E2EE adoption, burn-up -------------------------------------------------------
track = st.radio("Track", list(names), format_func=names.get, horizontal=True, key="weekly_track")
mix = cached_query(q.stage_mix_by_week, track=track, as_of_week=as_of_week)
st.plotly_chart(stage_mix_chart(mix, track_name=names[track]), key="weekly_mix")
left, right = st.columns(2)
left.plotly_chart(e2ee_adoption_chart(adoption), key="weekly_e2ee")
right.plotly_chart(weekly_burnup_chart(burnup), key="weekly_burnup")

# --- restatements ------------------------------------------------------------------------
restated = cached_query(q.restated_numbers, as_of_week=as_of_week)
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
today = cached_query(program_today)
risks = cached_query(q.top_risks, actor=actor, as_of=today)
st.subheader(f"Top risks today ({today:%Y-%m-%d})")
st.caption("Risks are about today, whatever week is chosen above: what is late and who is stuck now.")
st.markdown(f"**Overdue plan items: {len(risks.overdue_items)}** (not done and due before today)")
st.dataframe(
    risks.overdue_items[["id", "title", "owner", "due_date", "days_overdue", "status"]].assign(
        status=risks.overdue_items["status"].str.replace("_", " ")),
    hide_index=True, key="weekly_overdue",
    column_config={"id": "Item", "title": st.column_config.TextColumn("Title", width="large"),
                   "owner": "Owner", "due_date": st.column_config.DateColumn("Due"),
                   "days_overdue": "Days overdue", "status": "Status"},
)
by_tier = risks.stuck_by_tier
st.markdown(f"**Stuck tenants: {int(by_tier['total'].sum()):,}** (blocked, rolled back, "
            "or still on the legacy cipher after the deadline)")
st.dataframe(
    by_tier[["tier_name", "blocked", "rolled_back", "not_started_late", "total"]],
    hide_index=True, key="weekly_stuck_tiers",
    column_config={"tier_name": "Tier", "blocked": "Blocked", "rolled_back": "Rolled back",
                   "not_started_late": "Legacy after deadline", "total": "Total"},
)
st.markdown(f"**The {len(risks.largest_stuck)} largest stuck tenants, by seats**")
st.dataframe(
    risks.largest_stuck[["external_id", "name", "tier", "seats", "reason", "since", "account_manager"]],
    hide_index=True, key="weekly_largest",
    column_config={"external_id": "Tenant", "name": "Name", "tier": "Tier",
                   "seats": st.column_config.NumberColumn("Seats", format="%d"), "reason": "Why stuck",
                   "since": st.column_config.DatetimeColumn("Since", format="YYYY-MM-DD"),
                   "account_manager": "Account manager"},
)

if may_close:
    with st.expander("Close weeks"):
        st.caption("Freeze the numbers of every week that has ended and is not closed yet.")
        close_weeks_button("Close the weeks that have ended")
