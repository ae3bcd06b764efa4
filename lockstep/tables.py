"""The tables pages show, shaped for people: headers in words, codes as names, dates and numbers formatted.

Pure (no database, no streamlit): each function takes what a query returns and gives the
frame a page draws, with its column headers as the frame's columns; pages add only the
widths. The CSV downloads keep using the query frames, so they keep the codes.
"""

from __future__ import annotations

import pandas as pd

from lockstep.charts import stage_label
from lockstep.labels import (
    MISSING,
    Names,
    fmt_date,
    fmt_datetime,
    fmt_int,
    label_frame,
    owner_label,
    plan_status_label,
    share_link_status_label,
)


def plan_state(status: str, *, overdue: bool = False, retired: bool = False) -> str:
    """A plan item's status in words, with overdue and retired said too: 'In progress, overdue'."""
    text = plan_status_label(status)
    if retired:
        return f"{text}, retired"
    return f"{text}, overdue" if overdue else text


def plan_items_table(items: pd.DataFrame) -> pd.DataFrame:
    """The Plan page's item list (columns of queries.plan.plan_items in, headers out)."""
    shown = items.assign(
        state=[
            plan_state(s, overdue=bool(o), retired=bool(r))
            for s, o, r in zip(items["status"], items["overdue"], items["retired"], strict=True)
        ],
        slip=[f"{int(n):,} d" if n else "" for n in items["slip_days"]],
    )
    return label_frame(
        shown,
        {"id": "Id", "title": "Title", "owner": "Owner", "state": "Status", "percent": "Done %",
         "due_date": "Due", "done_date": "Done", "slip": "Slip"},
        formatters={"owner": owner_label, "due_date": fmt_date, "done_date": _date_or_blank},
    )


def _date_or_blank(value) -> str:
    # "Done" empty means not done yet: a blank reads better there than a dash in every row.
    text = fmt_date(value)
    return "" if text == MISSING else text


def dependency_conflicts_table(conflicts: pd.DataFrame) -> pd.DataFrame:
    """Items started or done before what they depend on (queries.plan.dependency_conflicts)."""
    return label_frame(
        conflicts.assign(
            item=[f"{i} · {t}" for i, t in zip(conflicts["id"], conflicts["title"], strict=True)],
            dep=[f"{i} · {t}" for i, t in zip(conflicts["dependency"], conflicts["dependency_title"],
                                                strict=True)],
        ),
        {"item": "Item", "status": "Its status", "dep": "Depends on",
         "dependency_status": "That one's status"},
        formatters={"status": plan_status_label, "dependency_status": plan_status_label},
    )


DEP_WIDTHS = {"Relation": {"width": 90}, "Item": {"width": 330}, "Status": {"width": 110},
              "Due": {"width": 95}, "Done": {"width": 95}}


def plan_dependencies_table(deps: pd.DataFrame) -> pd.DataFrame:
    """One item's dependencies both ways (queries.plan.plan_item_dependencies)."""
    return label_frame(
        deps.assign(item=[f"{i} · {t}" for i, t in zip(deps["id"], deps["title"], strict=True)]),
        {"relation": "Relation", "item": "Item", "status": "Status", "percent": "Done %", "due_date": "Due",
         "done_date": "Done"},
        formatters={"relation": lambda r: str(r).capitalize(), "status": plan_status_label,
                    "due_date": fmt_date, "done_date": _date_or_blank},
    )


def plan_history_table(history: pd.DataFrame, names: Names) -> pd.DataFrame:
    """An item's saved changes (queries.plan.plan_item_history)."""
    return label_frame(
        history,
        {"changed_at": "Changed", "changed_by": "By", "changes": "Changes", "version": "Version"},
        formatters={"changed_at": fmt_datetime, "changed_by": names.person},
    )


def overdue_items_table(items: pd.DataFrame) -> pd.DataFrame:
    """Weekly's overdue plan items (queries.weekly.overdue_plan_items)."""
    return label_frame(
        items.assign(late=[f"{int(n):,} d" for n in items["days_overdue"]]),
        {"id": "Item", "title": "Title", "owner": "Owner", "due_date": "Due", "late": "Overdue",
         "status": "Status"},
        formatters={"owner": owner_label, "due_date": fmt_date, "status": plan_status_label},
    )


def stuck_by_tier_table(by_tier: pd.DataFrame) -> pd.DataFrame:
    """Weekly's stuck tenants per tier (queries.weekly.stuck_tenants_by_tier)."""
    return label_frame(
        by_tier,
        {"tier_name": "Tier", "blocked": "Blocked", "rolled_back": "Rolled back",
         "not_started_late": "Legacy after deadline", "total": "Total"},
        formatters={k: fmt_int for k in ("blocked", "rolled_back", "not_started_late", "total")},
    )


def largest_stuck_table(stuck: pd.DataFrame, names: Names) -> pd.DataFrame:
    """Weekly's largest stuck tenants (queries.weekly.largest_stuck_tenants)."""
    return label_frame(
        stuck.assign(tenant=[f"{n} ({e})" for n, e in zip(stuck["name"], stuck["external_id"], strict=True)]),
        {"tenant": "Tenant", "tier": "Tier", "seats": "Seats", "reason": "Why stuck", "since": "Since",
         "account_manager": "Account manager"},
        formatters={"tier": names.tier, "seats": fmt_int, "reason": lambda r: str(r).capitalize(),
                    "since": fmt_date, "account_manager": names.person},
    )


def tenant_list_table(rows: pd.DataFrame, names: Names) -> pd.DataFrame:
    """Rollout's page of tenants (queries.rollout.tenant_page rows)."""
    return label_frame(
        rows,
        {"external_id": "Id", "name": "Name", "tier": "Tier", "region": "Region",
         "account_manager": "Account manager", "stage": "Stage", "since": "Since"},
        formatters={"tier": names.tier, "region": names.region, "account_manager": names.person,
                    "stage": _stage, "since": fmt_date},
    )


def _stage(code) -> str:
    return MISSING if code is None or (isinstance(code, float) and pd.isna(code)) else stage_label(code)


def tenant_states_table(states: pd.DataFrame) -> pd.DataFrame:
    """One tenant's stage per track (queries.rollout.tenant_detail states)."""
    return label_frame(
        states,
        {"track_name": "Track", "stage": "Stage", "reached_stage": "Last stage reached", "since": "Since",
         "note": "Note"},
        formatters={"stage": _stage, "reached_stage": _stage, "since": fmt_datetime},
    )


def tenant_events_table(events: pd.DataFrame, track_names: dict[str, str], names: Names) -> pd.DataFrame:
    """One tenant's latest events (queries.rollout.tenant_detail events)."""
    return label_frame(
        events,
        {"occurred_at": "When", "track": "Track", "stage": "Stage reached", "source": "Source", "actor": "By",
         "note": "Note"},
        formatters={"occurred_at": fmt_datetime, "track": lambda t: track_names.get(t, t), "stage": _stage,
                    "actor": names.person},
    )


def not_enabled_by_manager_table(by_manager: pd.DataFrame, names: Names) -> pd.DataFrame:
    """E2EE's paid tenants not yet enabled per account manager (queries.e2ee.not_enabled_by_manager)."""
    return label_frame(
        by_manager,
        {"account_manager": "Account manager", "tenants": "Not yet enabled"},
        formatters={"account_manager": names.person, "tenants": fmt_int},
    )


def not_enabled_tenants_table(tenants: pd.DataFrame, names: Names) -> pd.DataFrame:
    """E2EE's drill-down into one manager's tenants (queries.e2ee.not_enabled_tenants)."""
    columns = {"external_id": "Id", "name": "Name", "tier": "Tier", "region": "Region", "seats": "Seats",
               "stage": "Stage", "since": "Since", "blockers": "Held back by"}
    return label_frame(
        tenants,
        {k: v for k, v in columns.items() if k in tenants.columns},
        formatters={"tier": names.tier, "region": names.region, "seats": fmt_int, "stage": _stage,
                    "since": fmt_date},
    )


def share_links_table(links: pd.DataFrame, names: Names) -> pd.DataFrame:
    """A tenant's share links (services.share_links.list_share_links): dates say what they mean."""
    return label_frame(
        links.assign(link=[f"#{i}" for i in links["id"]]),
        {"link": "Link", "status": "State", "created_by": "Made by", "created_at": "Made",
         "expires_at": "Stops working", "revoked_at": "Revoked", "revoked_by": "Revoked by"},
        formatters={"status": share_link_status_label, "created_by": names.person, "created_at": fmt_datetime,
                    "expires_at": fmt_datetime, "revoked_at": _datetime_or_blank,
                    "revoked_by": lambda e: "" if e is None or pd.isna(e) else names.person(e)},
    )


def _datetime_or_blank(value) -> str:
    text = fmt_datetime(value)
    return "" if text == MISSING else text


def audit_entries_table(entries: pd.DataFrame) -> pd.DataFrame:
    """Audit entries as listed (queries.audit.audit_entries); the before/after stay as recorded."""
    return label_frame(
        entries,
        {c: h for c, h in (("id", "#"), ("at", "When (UTC)"), ("actor", "Who"), ("action", "Action"),
                          ("entity_type", "What"), ("entity_id", "Which"), ("before", "Before"),
                          ("after", "After")) if c in entries.columns},
        formatters={"at": fmt_datetime, "before": _json_or_blank, "after": _json_or_blank},
    )


def _json_or_blank(value) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)



# Column widths (pixels, as st.dataframe column_config) of customer_steps_table that fit
# beside the sidebar at 1280 pixels.
STEP_WIDTHS = {"Stage": {"width": 130}, "Reached": {"width": 75}, "When": {"width": 95},
               "What it means": {"width": 490}}


def customer_steps_table(steps) -> pd.DataFrame:
    """A track's stages as the customer reads them (queries.customers.StageStep items)."""
    return pd.DataFrame(
        [
            {
                "Stage": s.name,
                "Reached": "Yes" if s.reached else "Not yet",
                # Reached with no date: the stage every tenant starts at.
                "When": fmt_date(s.reached_at) if s.reached_at else ("From the start" if s.reached else ""),
                "What it means": s.description or "",
            }
            for s in steps
        ],
        columns=["Stage", "Reached", "When", "What it means"],
    )
