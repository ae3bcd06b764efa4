"""Rollout: where tenants stand per track, week by week and against the cut-over; one tenant's story."""

from __future__ import annotations

from datetime import datetime, time

import streamlit as st

from lockstep.charts import stage_label
from lockstep.charts.rollout import stage_funnel_figure, stage_mix_by_week_figure, stage_timeline_figure
from lockstep.db import write_transaction
from lockstep.errors import LockstepError, NotFoundError
from lockstep.forecast import PACE_DEFINITION, PACE_UNIT, format_pace
from lockstep.labels import (
    days_left_label,
    fmt_date,
    fmt_datetime,
    fmt_days,
    fmt_int,
    fmt_seats,
    next_stage_index,
)
from lockstep.permissions import can
from lockstep.queries import rollout as q
from lockstep.queries.e2ee import feature_name
from lockstep.queries.names import display_names
from lockstep.queries.program import program_today
from lockstep.queries.scope import is_narrowed
from lockstep.services.rollout import record_event
from lockstep.tables import tenant_events_table, tenant_list_table, tenant_states_table
from lockstep.ui.data import cached_query, clear_after_write, engine
from lockstep.ui.programs import current_program
from lockstep.ui.session import current_actor
from lockstep.ui.uploads import import_form

actor = current_actor()
st.title("Rollout")
# Import a file first: the rest of the page stops when no tenant is picked.
import_form(actor)

program = current_program()
tracks = cached_query(q.tracks, program=program)
if tracks.empty:
    st.info("No tracks yet. Sync the plan: `python -m lockstep plan sync plan/90-day-plan.yaml`.")
    st.stop()
track_names = dict(zip(tracks["code"], tracks["name"], strict=True))
track = st.selectbox("Track", list(tracks["code"]), format_func=track_names.get, key="rollout_track")
stages = cached_query(q.track_stages, track=track)
options = cached_query(q.filter_options, actor=actor)

cols = st.columns(4)
names_of = cached_query(display_names)
tiers = cols[0].multiselect("Tier", options["tiers"], format_func=names_of.tier, key="rollout_tiers")
regions = cols[1].multiselect(
    "Region", options["regions"], format_func=names_of.region, key="rollout_regions"
)
if actor.is_manager:
    managers: list[str] = []
    cols[2].text_input("Account manager", "Your tenants only", disabled=True)
else:
    managers = cols[2].multiselect(
        "Account manager", options["managers"], format_func=names_of.person, key="rollout_managers"
    )
picked_stages = cols[3].multiselect(
    "Stage", list(stages["stage"]), format_func=stage_label, key="rollout_stages"
)
filters = {
    "tiers": tuple(tiers),
    "regions": tuple(regions),
    "managers": tuple(managers),
    "stages": tuple(picked_stages),
}
name = track_names[track]

# --- where tenants stand now ------------------------------------------------------------
funnel = cached_query(q.stage_funnel, track=track, actor=actor, **filters)
st.plotly_chart(stage_funnel_figure(funnel, title=f"{name}: tenants by stage now"), key="rollout_funnel")
st.caption(f"{int(funnel['n'].sum()):,} tenants on this track match the filters.")

mix = cached_query(q.stage_mix_by_week, track=track, actor=actor, **filters)
order = list(stages["stage"])
if is_narrowed(actor, managers):
    # One bar ("now") is no chart of weeks: say why there is none instead.
    st.caption(
        "No week-by-week chart here: closed weeks are frozen per tier and region, not per account "
        "manager, so for one manager's tenants only now is known (above)."
    )
elif (mix["week"] == q.NOW).all():
    st.caption(
        "No week-by-week chart yet: weeks appear as they are closed with "
        "`python -m lockstep snapshot close-week`."
    )
else:
    st.plotly_chart(
        stage_mix_by_week_figure(mix, title=f"{name}: stage mix by ISO week", stage_order=order),
        key="rollout_mix",
    )
    st.caption("Closed weeks show the counts as restated by any later back-dated event; the last bar is now.")

# --- the cut-over -------------------------------------------------------------------------
cut = cached_query(q.cutover_status, track=track, actor=actor, **filters)
if cut is not None:
    st.subheader("Cut-over")
    ready_label = stage_label(cut.ready_stage)
    c = st.columns(4)
    c[0].metric("Not ready", fmt_int(cut.not_ready), help=f"Before {ready_label}, or blocked / rolled back")
    c[1].metric("Of which blocked or rolled back", fmt_int(cut.side))
    pace_help = f"Pace: {PACE_DEFINITION}; the stage here is {ready_label}. Weekly's forecast uses the same."
    pace_text = "—" if cut.pace is None else f"{format_pace(cut.pace)} {PACE_UNIT}"
    pace_value = "—" if cut.pace is None else format_pace(cut.pace)
    if cut.passed:
        c[2].metric(
            "Deadline passed", days_left_label(cut.days_left), help=f"Deadline {fmt_date(cut.deadline)}"
        )
        c[3].metric(f"Pace ({PACE_UNIT})", pace_value, help=pace_help)
        st.warning(
            f"The deadline ({fmt_date(cut.deadline)}) passed {fmt_days(-cut.days_left)} ago; "
            f"{fmt_int(cut.not_ready)} of {fmt_int(cut.total)} tenants are still not ready."
        )
    else:
        c[2].metric(
            "Days left", fmt_int(cut.days_left),
            help=f"Deadline {fmt_date(cut.deadline)}, today {fmt_date(cut.today)}",
        )
        c[3].metric(
            f"Needed pace ({PACE_UNIT})", format_pace(cut.needed_per_week),
            delta=None if cut.pace is None else f"seen {pace_value}", delta_color="gray", delta_arrow="off",
            help=pace_help,
        )
        st.caption(
            f"Needed: {format_pace(cut.needed_per_week)} {PACE_UNIT} to reach {ready_label} by "
            f"{fmt_date(cut.deadline)}. Seen: {pace_text}."
        )
    if cut.pace is None:
        st.caption(
            "No pace: it needs two closed weeks, and closed weeks are kept per tier and region, "
            "not per account manager."
        )
    else:
        st.caption(
            f"Pace ({PACE_UNIT}): {PACE_DEFINITION} (here {cut.pace_weeks}), at {ready_label} or later."
        )

# --- tenants ------------------------------------------------------------------------------
st.subheader("Tenants")
s1, s2 = st.columns([3, 1])
search = s1.text_input("Search by name or id", key="rollout_search")
page_no = s2.number_input("Page", min_value=1, value=1, step=1, key="rollout_page")
page = cached_query(q.tenant_page, actor=actor, track=track, search=search, page=int(page_no), **filters)
if page.total and page.page > page.pages:
    st.caption(f"There are only {page.pages} page(s).")
shown = tenant_list_table(page.rows, names_of)
# Widths that fit beside the sidebar at 1280 pixels: no column hides off the right.
st.dataframe(shown, hide_index=True, width="stretch", key="rollout_tenants", column_config={
    "Id": st.column_config.TextColumn(width=75), "Name": st.column_config.TextColumn(width=190),
    "Tier": st.column_config.TextColumn(width=90), "Region": st.column_config.TextColumn(width=105),
    "Account manager": st.column_config.TextColumn(width=140),
    "Stage": st.column_config.TextColumn(width=110), "Since": st.column_config.TextColumn(width=90),
})
first = (page.page - 1) * page.page_size
of = f"more than {page.total:,}" if page.more else f"{page.total:,}"
st.caption(
    f"{first + 1 if len(shown) else 0:,}–{first + len(shown):,} of {of} tenants, "
    f"page {page.page} of {page.pages}, sorted by name."
    + (" Narrow the search to reach the tenants after these pages." if page.more else "")
)

labels = dict(zip(page.rows["external_id"], page.rows["name"], strict=True))
picked = st.selectbox(
    "Tenant on this page",
    list(labels),
    index=None,
    format_func=lambda ext: f"{labels[ext]} ({ext})",
    placeholder="Pick a tenant to see its story",
    key="rollout_tenant",
)
if picked is None:
    st.stop()
try:
    detail = cached_query(q.tenant_detail, actor=actor, tenant_external_id=picked)
except NotFoundError as exc:
    st.error(str(exc))
    st.stop()

if flash := st.session_state.pop("rollout_flash", None):
    st.success(flash)
st.subheader("Tenant")
st.text(
    f"{detail.name} ({detail.external_id}) · {names_of.tier(detail.tier)} · "
    f"{names_of.region(detail.region)} · "
    f"{fmt_seats(detail.seats)} · lowest client {detail.client_version or 'unknown'} · "
    f"account manager {names_of.person(detail.account_manager)}"
)
st.dataframe(tenant_states_table(detail.states), hide_index=True, width="stretch", key="rollout_states",
             column_config={"Track": {"width": 190}, "Stage": {"width": 120},
                            "Last stage reached": {"width": 140}, "Since": {"width": 150},
                            "Note": {"width": 200}})

all_stages = {
    t: list(
        cached_query(q.track_stages, track=t).sort_values(["is_side", "position"], ascending=[False, True])[
            "stage"
        ]
    )
    for t in tracks["code"]
}
st.plotly_chart(
    stage_timeline_figure(
        detail.events, title="Stage over time", stage_order=all_stages, track_names=track_names
    ),
    key="rollout_timeline",
)
with st.expander(f"Events ({len(detail.events)} latest, at most {q.EVENT_LIMIT})"):
    st.dataframe(tenant_events_table(detail.events, track_names, names_of), hide_index=True, width="stretch",
                 key="rollout_events",
                 column_config={"When": {"width": 150}, "Track": {"width": 170},
                                "Stage reached": {"width": 120}, "Source": {"width": 90},
                                "By": {"width": 100}, "Note": {"width": 170}})

st.markdown("**Blockers**")
if detail.blockers.empty and detail.blocked_notes.empty:
    st.caption("Nothing blocks this tenant.")
if not detail.blockers.empty:
    st.dataframe(
        detail.blockers.assign(
            track=[track_names.get(t, t) for t in detail.blockers["track"]],
            feature=[feature_name(f) for f in detail.blockers["feature"]],
        ).rename(columns={"track": "Track", "feature": "Feature in use that blocks it"}),
        hide_index=True,
        key="rollout_blockers",
    )
if not detail.blocked_notes.empty:
    st.dataframe(
        detail.blocked_notes.assign(
            track=[track_names.get(t, t) for t in detail.blocked_notes["track"]],
            occurred_at=[fmt_datetime(t) for t in detail.blocked_notes["occurred_at"]],
        ).rename(
            columns={"occurred_at": "Blocked at", "track": "Track", "note": "Why (from the blocked event)"}
        ),
        hide_index=True,
        width="stretch",
        key="rollout_blocked_notes",
    )

# --- record an event ------------------------------------------------------------------------
if can(actor, "event.record"):
    st.subheader("Record an event")
    ev_track = st.selectbox("Track", list(tracks["code"]), format_func=track_names.get, key="event_track")
    ev_stages = list(cached_query(q.track_stages, track=ev_track)["stage"])
    today = cached_query(program_today, program=program)
    on_track = detail.states[detail.states["track"] == ev_track]
    now_at, reached = (
        (on_track["stage"].iloc[0], on_track["reached_stage"].iloc[0]) if len(on_track) else (None, None)
    )
    with st.form("record_event"):
        # What people record is nearly always the next step, so that is what the form offers first.
        ev_stage = st.selectbox(
            "Stage reached", ev_stages, index=next_stage_index(ev_stages, now_at, reached=reached),
            format_func=stage_label,
        )
        d1, d2 = st.columns(2)
        ev_date = d1.date_input("Date (UTC)", value=today)
        ev_time = d2.time_input("Time (UTC)", value=time(9, 0))
        ev_source = st.text_input("Source", value="manual")
        ev_note = st.text_area("Note", max_chars=2000)
        submitted = st.form_submit_button("Record event")
    if submitted:
        try:
            done = write_transaction(
                lambda session: record_event(
                    session=session,
                    actor=actor,
                    tenant_external_id=detail.external_id,
                    track=ev_track,
                    stage=ev_stage,
                    occurred_at=datetime.combine(ev_date, ev_time),
                    source=ev_source.strip() or "manual",
                    note=ev_note.strip(),
                ),
                engine=engine(),
            )
        except LockstepError as exc:
            st.error(str(exc))
        else:
            clear_after_write()
            moved = f"{stage_label(done.before)} → {stage_label(done.after)}"
            dated = " (back-dated)" if done.back_dated else ""
            st.session_state["rollout_flash"] = f"Recorded on {track_names[done.track]}: {moved}{dated}"
            st.rerun()
