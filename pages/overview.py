"""Overview: where the program stands today, and what changed in the last week."""

from __future__ import annotations

import streamlit as st

from lockstep.charts.overview import stage_mix_week_over_week
from lockstep.labels import count_delta, days_left_label, fmt_int, points_delta
from lockstep.queries.overview import final_stage, track_stage_mix
from lockstep.queries.plan import AT_RISK_RULE, OVERDUE_RULE, plan_key_numbers
from lockstep.queries.program import program_deadlines, program_track, program_window
from lockstep.ui.data import cached_query
from lockstep.ui.programs import current_program
from lockstep.ui.session import current_actor

actor = current_actor()
program = current_program()
st.title("Overview")
# The program's own tracks for the two sections ("encryption…", "e2ee…"; None: it has none).
ENCRYPTION = cached_query(program_track, kind="encryption", program=program) or ""
E2EE = cached_query(program_track, kind="e2ee", program=program) or ""

window = cached_query(program_window, program=program)
if window is None:
    st.info("No program yet. Sync the plan: `python -m lockstep plan sync plan/90-day-plan.yaml`.")
    st.stop()
today = window.today
st.caption(f"{window.name} · today is {today:%A} {today.day} {today:%B %Y}")
if actor.is_manager:
    st.caption(f"Rollout numbers count your tenants only ({actor.email}).")


deadlines = cached_query(program_deadlines, program=program)
cols = st.columns(1 + len(deadlines))
cols[0].metric(
    "Program day",
    f"Day {window.day} of {window.days_total}",
    help=f"{window.start:%b} {window.start.day} to {window.end:%b} {window.end.day}, both days counted",
)
for col, row in zip(cols[1:], deadlines.itertuples(), strict=True):
    col.metric(
        row.what, days_left_label(row.days_left),
        help=f"{row.deadline:%A} {row.deadline.day} {row.deadline:%B %Y}",
    )

# --- the plan ------------------------------------------------------------------------------
st.subheader("Plan")
k = cached_query(plan_key_numbers, program=program).set_index("measure")
c = st.columns(4)


def _delta(measure: str, *, higher_is_better: bool) -> dict:
    return count_delta(k.loc[measure, "now"] - k.loc[measure, "week_ago"], higher_is_better=higher_is_better)


c[0].metric("Done", fmt_int(k.loc["done", "now"]), **_delta("done", higher_is_better=True),
            help="Items with status done")
c[1].metric("At risk", fmt_int(k.loc["at_risk", "now"]), **_delta("at_risk", higher_is_better=False),
            help=AT_RISK_RULE)
c[2].metric("Overdue", fmt_int(k.loc["overdue", "now"]), **_delta("overdue", higher_is_better=False),
            help=OVERDUE_RULE)
c[3].metric(
    "Items in the plan", f"{k.loc['total', 'now']:,}", help="Live items; retired ones are not counted"
)
st.caption(
    f"{OVERDUE_RULE.capitalize()}; {AT_RISK_RULE}. Changes are against 7 days ago, worked out from "
    "due and done dates; statuses are not dated, so at risk a week ago uses today's status and percent."
)

# --- the encryption rollout ----------------------------------------------------------------
st.subheader("Encryption rollout")
enc = cached_query(track_stage_mix, actor=actor, track=ENCRYPTION)
if enc.counts.empty:
    st.info("This program has no encryption track.")
else:
    rows = [*enc.counts[~enc.counts["is_side"]].itertuples(), *enc.counts[enc.counts["is_side"]].itertuples()]
    ordered = [r.stage for r in rows if not r.is_side]
    first, last = ordered[0], ordered[-1]
    cols = st.columns(len(rows))
    for col, row in zip(cols, rows, strict=True):
        # More at the last stage is good; more at the first or a side stage is bad. Stages in
        # between (GCM enabled too) lose tenants as they move on, so neither way is coloured.
        better = True if row.stage == last else False if row.is_side or row.stage == first else None
        col.metric(row.label, fmt_int(row.n), **count_delta(row.n - row.n_week_ago, higher_is_better=better))
    total, total_ago = enc.total, enc.total_week_ago
    ready, ready_ago = enc.ready(), enc.ready(week_ago=True)
    share = ready / total if total else 0.0
    share_ago = ready_ago / total_ago if total_ago else 0.0
    ready_names = " or ".join(enc.counts.loc[enc.counts["ready"], "label"])
    c = st.columns(3)
    c[0].metric(
        "Ready for the cut-over",
        f"{share:.1%}",
        **points_delta((share - share_ago) * 100),
        help=f"Share of {total:,} tenants at {ready_names}; blocked and rolled back count as not ready",
    )
    c[1].metric(
        "Tenants not ready",
        fmt_int(total - ready),
        **count_delta((total - ready) - (total_ago - ready_ago), higher_is_better=False),
    )
    st.plotly_chart(
        stage_mix_week_over_week(enc.counts, title="Tenants per encryption stage, a week ago and now"),
        key="overview_encryption_mix",
    )
    st.caption(f"Weekly change {enc.basis}.")

# --- end-to-end encryption -----------------------------------------------------------------
st.subheader("End-to-end encryption (paid tiers)")
e2 = cached_query(track_stage_mix, actor=actor, track=E2EE, paid_only=True)
final = cached_query(final_stage, track=E2EE)
if e2.counts.empty or final is None:
    st.info("This program has no E2EE track.")
else:
    enabled, enabled_ago = e2.at(final), e2.at(final, week_ago=True)
    c = st.columns(3)
    c[0].metric("Paid tenants with E2EE enabled", fmt_int(enabled), **count_delta(enabled - enabled_ago))
    c[1].metric(
        "Share of paid tenants",
        f"{enabled / e2.total:.1%}" if e2.total else "—",
        help=f"Of {e2.total:,} paid tenants on the E2EE track",
    )
    c[2].metric(
        "Paid tenants blocked",
        fmt_int(e2.at("blocked")),
        **count_delta(e2.at("blocked") - e2.at("blocked", week_ago=True), higher_is_better=False),
        help="Mostly a feature E2EE does not support yet",
    )
    st.caption(f"Weekly change {e2.basis}.")
