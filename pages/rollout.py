"""Rollout: where tenants stand per track, week by week and against the cut-over; one tenant's story."""

from __future__ import annotations

from datetime import datetime, time

import streamlit as st

from lockstep.charts import stage_label
from lockstep.charts.rollout import stage_funnel_figure, stage_mix_by_week_figure, stage_timeline_figure
from lockstep.db import write_transaction
from lockstep.errors import LockstepError, NotFoundError
from lockstep.permissions import can
from lockstep.queries import rollout as q
from lockstep.queries.e2ee import feature_name
from lockstep.queries.program import program_today
from lockstep.queries.scope import is_narrowed
from lockstep.services.rollout import record_event
from lockstep.ui.data import cached_query, clear_after_write, engine
from lockstep.ui.session import current_actor
from lockstep.ui.uploads import KINDS, TYPES, import_upload

actor = current_actor()
st.title("Rollout")
# --- import a file (first: the rest of the page stops when no tenant is picked) -------------------
if can(actor, "import.run"):
    with st.expander("Import tenants or events (CSV or XLSX)"):
        st.caption(
            "A CSV or XLSX file, checked in full before anything is written (docs/csv-formats.md). "
            "Dates are ISO 8601 unless a date format is given; XLSX reads the first sheet unless named."
        )
        with st.form("import_file"):
            up_kind = st.radio("File holds", KINDS, horizontal=True)
            uploaded = st.file_uploader("File", type=TYPES)
            u1, u2 = st.columns(2)
            up_format = u1.text_input("Date format (events)", placeholder="%d/%m/%Y, %m/%d/%Y or excel")
            up_sheet = u2.text_input("Sheet (XLSX)", placeholder="first sheet")
            up_go = st.form_submit_button("Import")
        if up_go and uploaded is not None:
            try:
                outcome = import_upload(
                    engine(),
                    kind=up_kind,
                    file_name=uploaded.name,
                    data=uploaded.getvalue(),
                    actor=actor,
                    date_format=up_format.strip(),
                    sheet=up_sheet.strip(),
                )
            except LockstepError as exc:
                st.error(str(exc))
            else:
                if outcome.ok:
                    clear_after_write()
                    st.success(outcome.message)
                else:
                    st.error(outcome.message)
                    st.caption("By column and reason")
                    st.dataframe(outcome.summary, hide_index=True, width="stretch", key="import_summary")
                    st.caption(f"The first {len(outcome.errors)} bad values by row")
                    st.dataframe(outcome.errors, hide_index=True, width="stretch", key="import_errors")
                    st.download_button(
                        "Download every error (CSV)",
                        outcome.error_file,
                        file_name=f"errors-{uploaded.name.rsplit('.', 1)[0]}.csv",
                        mime="text/csv",
                        key="import_errors_csv",
                    )


tracks = cached_query(q.tracks)
if tracks.empty:
    st.info("No tracks yet. Sync the plan: `python -m lockstep plan sync plan/90-day-plan.yaml`.")
    st.stop()
track_names = dict(zip(tracks["code"], tracks["name"], strict=True))
track = st.selectbox("Track", list(tracks["code"]), format_func=track_names.get, key="rollout_track")
stages = cached_query(q.track_stages, track=track)
options = cached_query(q.filter_options, actor=actor)

cols = st.columns(4)
tiers = cols[0].multiselect("Tier", options["tiers"], key="rollout_tiers")
regions = cols[1].multiselect("Region", options["regions"], key="rollout_regions")
if actor.is_manager:
    managers: list[str] = []
    cols[2].text_input("Account manager", "Your tenants only", disabled=True)
else:
    managers = cols[2].multiselect("Account manager", options["managers"], key="rollout_managers")
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
st.plotly_chart(
    stage_mix_by_week_figure(mix, title=f"{name}: stage mix by ISO week", stage_order=order),
    key="rollout_mix",
)
if is_narrowed(actor, managers):
    st.caption("Closed weeks are frozen per tier and region, not per account manager, so only now is shown.")
elif (mix["week"] == q.NOW).all():
    st.caption(
        "Only now is shown: weeks appear here as they are closed with "
        "`python -m lockstep snapshot close-week`."
    )
else:
    st.caption("Closed weeks show the counts as restated by any later back-dated event; the last bar is now.")

# --- the cut-over -------------------------------------------------------------------------
cut = cached_query(q.cutover_status, track=track, actor=actor, **filters)
if cut is not None:
    st.subheader("Cut-over")
    ready_label = stage_label(cut.ready_stage)
    c = st.columns(4)
    c[0].metric("Not ready", f"{cut.not_ready:,}", help=f"Before {ready_label}, or blocked / rolled back")
    c[1].metric("Of which blocked or rolled back", f"{cut.side:,}")
    if cut.passed:
        c[2].metric("Deadline passed", f"{-cut.days_left} days ago", help=f"Deadline {cut.deadline}")
        c[3].metric("Seen per week", f"{cut.seen_per_week:,.1f}")
        st.warning(
            f"The deadline ({cut.deadline}) passed {-cut.days_left} days ago; "
            f"{cut.not_ready:,} of {cut.total:,} tenants are still not ready."
        )
    else:
        c[2].metric("Days left", f"{cut.days_left}", help=f"Deadline {cut.deadline}, today {cut.today}")
        c[3].metric(
            "Needed per week",
            f"{cut.needed_per_week:,.1f}",
            delta=f"seen {cut.seen_per_week:,.1f} per week",
            delta_color="off",
        )
        st.caption(
            f"Needed: {cut.needed_per_day:,.1f} tenants per day ({cut.needed_per_week:,.1f} per week) to "
            f"reach {ready_label} by {cut.deadline}. Seen: {cut.seen_per_day:,.1f} per day "
            f"({cut.seen_per_week:,.1f} per week)."
        )
    st.caption(
        f"Velocity seen is approximate: tenants now at {ready_label} or later whose last move was in the "
        f"last {q.VELOCITY_WINDOW_DAYS} days (up to {cut.today}), divided by two weeks."
    )

# --- tenants ------------------------------------------------------------------------------
st.subheader("Tenants")
s1, s2 = st.columns([3, 1])
search = s1.text_input("Search by name or id", key="rollout_search")
page_no = s2.number_input("Page", min_value=1, value=1, step=1, key="rollout_page")
page = cached_query(q.tenant_page, actor=actor, track=track, search=search, page=int(page_no), **filters)
if page.total and page.page > page.pages:
    st.caption(f"There are only {page.pages} page(s).")
shown = page.rows.assign(stage=[stage_label(s) for s in page.rows["stage"]]).rename(
    columns={"external_id": "id", "account_manager": "account manager"}
)
st.dataframe(shown, hide_index=True, width="stretch", key="rollout_tenants")
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
    f"{detail.name} ({detail.external_id}) · tier {detail.tier} · region {detail.region} · "
    f"{detail.seats:,} seats · lowest client {detail.client_version or 'unknown'} · "
    f"account manager {detail.account_manager}"
)
states = detail.states.assign(
    stage=[stage_label(s) for s in detail.states["stage"]],
    reached_stage=[stage_label(s) for s in detail.states["reached_stage"]],
)[["track_name", "stage", "reached_stage", "since", "note"]].rename(
    columns={"track_name": "track", "reached_stage": "last stage reached"}
)
st.dataframe(states, hide_index=True, width="stretch", key="rollout_states")

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
    st.dataframe(detail.events, hide_index=True, width="stretch", key="rollout_events")

st.markdown("**Blockers**")
if detail.blockers.empty and detail.blocked_notes.empty:
    st.caption("Nothing blocks this tenant.")
if not detail.blockers.empty:
    st.dataframe(
        detail.blockers.assign(
            track=[track_names.get(t, t) for t in detail.blockers["track"]],
            feature=[feature_name(f) for f in detail.blockers["feature"]],
        ).rename(columns={"feature": "feature in use that blocks it"}),
        hide_index=True,
        key="rollout_blockers",
    )
if not detail.blocked_notes.empty:
    st.dataframe(
        detail.blocked_notes.assign(
            track=[track_names.get(t, t) for t in detail.blocked_notes["track"]]
        ).rename(columns={"occurred_at": "blocked at", "note": "why (from the blocked event)"}),
        hide_index=True,
        width="stretch",
        key="rollout_blocked_notes",
    )

# --- record an event ------------------------------------------------------------------------
if can(actor, "event.record"):
    st.subheader("Record an event")
    ev_track = st.selectbox("Track", list(tracks["code"]), format_func=track_names.get, key="event_track")
    ev_stages = list(cached_query(q.track_stages, track=ev_track)["stage"])
    today = cached_query(program_today)
    with st.form("record_event"):
        ev_stage = st.selectbox("Stage reached", ev_stages, format_func=stage_label)
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
