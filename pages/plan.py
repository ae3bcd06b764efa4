"""Plan: every item with owner, status, due vs done; slips, dependencies, burn-up; editing with locking."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lockstep.charts.plan import plan_burnup_chart, plan_timeline
from lockstep.db import write_session
from lockstep.errors import ConflictError, LockstepError
from lockstep.labels import fmt_date, owner_label, plan_status_label
from lockstep.models import PLAN_STATUSES
from lockstep.permissions import can
from lockstep.queries import plan as q
from lockstep.queries.names import display_names
from lockstep.queries.program import program_window
from lockstep.services.plan_items import update_plan_item
from lockstep.tables import (
    DEP_WIDTHS,
    dependency_conflicts_table,
    plan_dependencies_table,
    plan_history_table,
    plan_items_table,
)
from lockstep.ui.data import cached_query, clear_after_write, engine, run_query
from lockstep.ui.programs import current_program
from lockstep.ui.session import current_actor

FIELDS = {
    "status": "plan_edit_status",
    "percent": "plan_edit_percent",
    "done_date": "plan_edit_done",
    "comment": "plan_edit_comment",
}
ss = st.session_state
actor = current_actor()
may_edit = can(actor, "plan.edit")
st.title("Plan")

program = current_program()
window = cached_query(program_window, program=program)
if window is None:
    st.info("No plan yet. Sync it: `python -m lockstep plan sync plan/90-day-plan.yaml`.")
    st.stop()
today = window.today
st.caption(f"Today is {today:%a} {today.day} {today:%b %Y}. {q.OVERDUE_RULE.capitalize()}; {q.AT_RISK_RULE}.")

# --- filters (applied in SQL) --------------------------------------------------------------
options = cached_query(q.plan_filter_options, program=program)
ws_names = dict(options["workstreams"])
c = st.columns([3, 3, 3, 2, 2.2], vertical_alignment="bottom")
filters = {
    "workstreams": tuple(
        c[0].multiselect("Workstream", list(ws_names), format_func=ws_names.get, key="plan_ws")
    ),
    "owners": tuple(c[1].multiselect("Owner", options["owners"], format_func=owner_label, key="plan_owners")),
    "statuses": tuple(
        c[2].multiselect("Status", PLAN_STATUSES, format_func=plan_status_label, key="plan_statuses")
    ),
    "overdue_only": c[3].checkbox("Overdue only", key="plan_overdue"),
    "include_retired": c[4].checkbox("Show retired", key="plan_retired"),
}
items = cached_query(q.plan_items, today=today, program=program, **filters)
n_overdue, n_at_risk = int(items["overdue"].sum()), int(items["at_risk"].sum())
st.caption(f"{len(items)} item(s) match: {n_overdue} overdue, {n_at_risk} at risk.")
# Widths add up to what fits beside the sidebar at 1280 pixels: no column hides off the right.
st.dataframe(
    plan_items_table(items), hide_index=True, key="plan_table",
    column_config={
        "Id": st.column_config.TextColumn(width=45),
        "Title": st.column_config.TextColumn(width=185),
        "Owner": st.column_config.TextColumn(width=140),
        "Status": st.column_config.TextColumn(width=140),
        "Done %": st.column_config.ProgressColumn(min_value=0, max_value=100, format="%d%%", width=80,
                                                  color="green"),
        "Due": st.column_config.TextColumn(width=85),
        "Done": st.column_config.TextColumn(width=85),
        "Slip": st.column_config.TextColumn(width=45, help="Done after due, or days overdue"),
    },
)
st.plotly_chart(plan_timeline(items, today=today, window=(window.start, window.end)), key="plan_timeline")
later = int((items["due_date"].notna() & (items["due_date"] > window.end)).sum())
if later:
    st.caption(
        f"{later} item(s) are due after the program ends ({fmt_date(window.end)}): their bars run off the "
        "right edge, or, when they start after it, a ▸ at the edge gives the due date."
    )
st.plotly_chart(
    plan_burnup_chart(
        cached_query(q.plan_burnup, start=window.start, end=window.end, today=today, program=program)
    ),
    key="plan_burnup",
)
st.caption(
    "Planned: items due by the week's last day. Done: items done by then. The done line stops at today."
)
conflicts = cached_query(q.dependency_conflicts, program=program)
if not conflicts.empty:
    st.warning(
        f"{len(conflicts)} item(s) were started or finished while something they depend on is not done."
    )
    st.dataframe(dependency_conflicts_table(conflicts), hide_index=True, key="plan_conflicts",
                 column_config={"Item": {"width": 290}, "Its status": {"width": 100},
                                "Depends on": {"width": 290}, "That one's status": {"width": 110}})

# --- one item ------------------------------------------------------------------------------
st.subheader("Item")
if items.empty:
    st.info("No items match these filters.")
    st.stop()
titles = dict(zip(items["id"], items["title"], strict=True))
# The picked item outlives a visit to another page (Streamlit forgets the widget's own value).
if "plan_item" not in ss and ss.get("plan_item_kept") in titles:
    ss["plan_item"] = ss["plan_item_kept"]
item_id = st.selectbox("Item", list(titles), format_func=lambda i: f"{i} · {titles[i]}", key="plan_item")
ss["plan_item_kept"] = item_id
deps = cached_query(q.plan_item_dependencies, item_id=item_id)
st.markdown("**Dependencies**")
if deps.empty:
    st.caption("Depends on nothing, and nothing depends on it.")
else:
    st.dataframe(
        plan_dependencies_table(deps), hide_index=True, key="plan_deps",
        column_config={**DEP_WIDTHS, "Done %": st.column_config.NumberColumn(format="%d%%", width=70)},
    )
    for flag in deps["flag"][deps["flag"] != ""]:
        st.warning(flag)
st.markdown("**History** (newest first)")
history = cached_query(q.plan_item_history, item_id=item_id)
if history.empty:
    st.caption("No saved changes yet.")
else:
    st.dataframe(
        plan_history_table(history, cached_query(display_names)), hide_index=True, key="plan_history",
        column_config={"Changed": {"width": 150}, "By": {"width": 130}, "Changes": {"width": 430},
                       "Version": {"width": 70}},
    )

if not may_edit:
    st.caption("Read only: your role may not edit plan items.")
    st.stop()


# --- editing: the form keeps the version it was loaded at ----------------------------------
def _form_value(item: dict, field: str):
    return (item[field] or "") if field == "comment" else item[field]


def _load(item: dict) -> None:
    """Put `item` in the form, remembering its version; drops any pending conflict."""
    ss["plan_loaded"] = {k: item[k] for k in ("id", "version", *FIELDS)}
    for field, key in FIELDS.items():
        ss[key] = _form_value(item, field)
    ss.pop("plan_conflict", None)


def _edited() -> dict:
    """The fields the user changed since loading: only these are sent, so a re-apply keeps theirs."""
    return {f: ss.get(k) for f, k in FIELDS.items() if ss.get(k) != _form_value(ss["plan_loaded"], f)}


def _save(expected_version: int) -> None:
    """Send the user's changes against `expected_version` (a callback: runs before the rerun)."""
    item_id, mine = ss["plan_loaded"]["id"], _edited()
    try:
        with write_session(engine()) as session:
            change = update_plan_item(
                session=session, actor=actor, item_id=item_id, expected_version=expected_version, **mine
            )
    except ConflictError as exc:
        ss["plan_conflict"] = {
            "message": str(exc),
            "current": exc.current,
            "theirs": exc.their_change,
            "mine": mine,
        }
        clear_after_write()  # our cached reads are older than their change
        return
    except LockstepError as exc:
        ss["plan_error"] = str(exc)
        return
    ss["plan_flash"] = (
        f"Saved {item_id} (version {change.version})." if change.changed else "Nothing changed."
    )
    ss.pop("plan_loaded", None)
    ss.pop("plan_conflict", None)
    clear_after_write()


def _discard() -> None:
    _load(run_query(q.plan_item, item_id=ss["plan_loaded"]["id"]))


fresh = cached_query(q.plan_item, item_id=item_id)
loaded = ss.get("plan_loaded")
stale_but_untouched = loaded is not None and loaded["version"] != fresh["version"] and not _edited()
if loaded is None or loaded["id"] != item_id or (stale_but_untouched and "plan_conflict" not in ss):
    _load(fresh)
    loaded = ss["plan_loaded"]
# Streamlit drops a widget's value when a run ends without drawing it (a page switch that cut
# the last run short, say): put back what was loaded, or the form would show, and on Save
# send, an empty comment.
for field, key in FIELDS.items():
    if key not in ss:
        ss[key] = _form_value(loaded, field)

if flash := ss.pop("plan_flash", None):
    st.success(flash)
if error := ss.pop("plan_error", None):
    st.error(error)
if conflict := ss.get("plan_conflict"):
    theirs, current, mine = conflict["theirs"] or {}, conflict["current"], conflict["mine"]
    st.error(conflict["message"])
    who, when = theirs.get("who", current["updated_by"]), theirs.get("when", current["updated_at"])
    what = q.describe_changes(theirs.get("changes")) or "details not recorded"
    st.markdown("**Their change**")
    st.text(f"{who} at {when:%Y-%m-%d %H:%M} UTC (now version {current['version']}): {what}")
    st.markdown("**Your unsaved changes** (still in the form below)")
    rows = {"field": list(mine), "you loaded": [str(_form_value(loaded, f)) for f in mine]}
    rows |= {"yours": [str(v) for v in mine.values()], "now saved": [str(current[f]) for f in mine]}
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="plan_conflict_mine")
    b = st.columns(2)
    b[0].button(
        f"Re-apply my changes on top of version {current['version']}",
        key="plan_reapply",
        on_click=_save,
        args=(current["version"],),
        type="primary",
    )
    b[1].button("Discard my changes and load the latest", key="plan_discard", on_click=_discard)

with st.form("plan_edit", border=True):
    st.markdown(f"**Edit {item_id}** (loaded at version {loaded['version']})")
    f = st.columns([2, 1, 2])
    f[0].selectbox("Status", PLAN_STATUSES, format_func=plan_status_label, key=FIELDS["status"])
    f[1].number_input("Percent done", min_value=0, max_value=100, step=5, key=FIELDS["percent"])
    f[2].date_input("Done date", key=FIELDS["done_date"], help="Only with status done; empty means today")
    st.text_area("Comment", key=FIELDS["comment"], max_chars=4000)
    st.form_submit_button("Save", type="primary", on_click=_save, args=(loaded["version"],))
