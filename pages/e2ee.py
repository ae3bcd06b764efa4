"""E2EE: paid-tier adoption by tier and week, what holds tenants back, and who has tenants left."""

from __future__ import annotations

import streamlit as st

from lockstep.charts import stage_label
from lockstep.charts.e2ee import adoption_by_tier_figure, blockers_figure
from lockstep.charts.rollout import stage_mix_by_week_figure
from lockstep.exports import dataframe_to_csv
from lockstep.labels import fmt_int
from lockstep.queries import e2ee as q
from lockstep.queries.names import display_names
from lockstep.queries.program import program_track
from lockstep.queries.rollout import NOW, stage_mix_by_week, track_stages
from lockstep.tables import not_enabled_by_manager_table, not_enabled_tenants_table
from lockstep.ui.data import cached_query, deferred_query
from lockstep.ui.programs import current_program
from lockstep.ui.session import current_actor

actor = current_actor()
st.title("End-to-end encryption")

# The program's E2EE track: `e2ee`, or one named `e2ee_…` (lockstep.queries.program.program_track).
track = cached_query(program_track, kind="e2ee", program=current_program())
stages = cached_query(track_stages, track=track) if track else None
if stages is None or stages.empty:
    st.info(
        "This program has no E2EE track (`e2ee`, or a track whose id starts with `e2ee_`). "
        "Sync the plan: `python -m lockstep plan sync plan/90-day-plan.yaml`."
    )
    st.stop()
order = list(stages["stage"])
enabled = cached_query(q.enabled_stage, track=track)
if actor.is_manager:
    st.caption("Your tenants only.")

by_tier = cached_query(q.adoption_by_tier, actor=actor, track=track)
per_stage = by_tier.groupby("stage")["n"].sum()
total = int(per_stage.sum())
c = st.columns(4)
c[0].metric("Paid tenants covered", fmt_int(total))
c[1].metric(stage_label(enabled), fmt_int(per_stage.get(enabled, 0)))
c[2].metric("Pilot", fmt_int(per_stage.get("pilot", 0)))
c[3].metric("Blocked", fmt_int(per_stage.get("blocked", 0)))

st.plotly_chart(
    adoption_by_tier_figure(by_tier, title="Paid tenants by tier and E2EE stage", stage_order=order),
    key="e2ee_by_tier",
)
by_week = cached_query(stage_mix_by_week, track=track, actor=actor)
if actor.is_manager:
    # One bar ("now") is no chart of weeks: say why there is none instead.
    st.caption(
        "No week-by-week chart here: closed weeks are frozen per tier and region, not per account "
        "manager, so for your tenants only now is known (above)."
    )
elif (by_week["week"] == NOW).all():
    st.caption(
        "No week-by-week chart yet: weeks appear as they are closed with "
        "`python -m lockstep snapshot close-week`."
    )
else:
    st.plotly_chart(
        stage_mix_by_week_figure(by_week, title="E2EE stage mix by ISO week", stage_order=order),
        key="e2ee_by_week",
    )

st.subheader("What holds tenants back")
blockers = cached_query(q.blockers_ranking, actor=actor, track=track)
st.plotly_chart(
    blockers_figure(blockers, title="Features in use by paid tenants not yet enabled"),
    key="e2ee_blockers",
)
st.caption(
    "A tenant using several of these features counts once under each. Features E2EE could not "
    "support at launch, from the plan's e2ee track."
)

st.subheader("Paid tenants not yet enabled, by account manager")
by_manager = cached_query(q.not_enabled_by_manager, actor=actor, track=track)
if by_manager.empty:
    st.success("Every paid tenant in view has E2EE enabled.")
    st.stop()
names_of = cached_query(display_names)
st.dataframe(not_enabled_by_manager_table(by_manager, names_of), hide_index=True, width="stretch",
             key="e2ee_managers")
st.download_button(
    "Download this table (CSV)",
    dataframe_to_csv(by_manager),
    file_name="e2ee-not-enabled-by-manager.csv",
    mime="text/csv",
    key="e2ee_csv_managers",
    on_click="ignore",  # a download needs no rerun (and a rerun would drop pending downloads)
)

manager = st.selectbox("Drill down into", list(by_manager["account_manager"]), format_func=names_of.person,
                       key="e2ee_manager")
waiting = int(by_manager.set_index("account_manager").at[manager, "tenants"])
shown_key = f"e2ee_shown_{manager}"
limit = st.session_state.get(shown_key, q.DRILL_DOWN_PAGE)
tenants = cached_query(q.not_enabled_tenants, actor=actor, manager=manager, limit=limit, track=track)


def for_display(df):
    """The drill-down as shown and downloaded: stage names in words, `id` for the external id."""
    return df.assign(stage=[stage_label(s) for s in df["stage"]]).rename(columns={"external_id": "id"})


def show_more(key: str, now: int) -> None:
    st.session_state[key] = now + q.DRILL_DOWN_PAGE


st.dataframe(
    not_enabled_tenants_table(tenants, names_of), hide_index=True, width="stretch", key="e2ee_tenants",
    column_config={"Id": {"width": 75}, "Name": {"width": 200}, "Tier": {"width": 80},
                   "Region": {"width": 105}, "Stage": {"width": 80}, "Since": {"width": 95},
                   "Held back by": {"width": 170}},
)
c = st.columns([2, 1, 1.5])
c[0].caption(f"{len(tenants):,} of {waiting:,} not yet enabled, by name.")
if len(tenants) < waiting:
    c[1].button(
        f"Show {min(q.DRILL_DOWN_PAGE, waiting - len(tenants)):,} more",
        on_click=show_more,
        args=(shown_key, limit),
        key="e2ee_more",
    )
everyone = deferred_query(q.not_enabled_tenants, actor=actor, manager=manager, limit=None, track=track)
c[2].download_button(
    f"Download all {waiting:,} (CSV)",
    lambda: dataframe_to_csv(for_display(everyone())),  # built on click: all rows, not just those shown
    file_name=f"e2ee-not-enabled-{manager.split('@')[0]}.csv",
    mime="text/csv",
    key="e2ee_csv_tenants",
    on_click="ignore",  # a download needs no rerun (and a rerun would drop pending downloads)
)
