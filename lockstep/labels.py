"""Codes in words, numbers and dates for people: the one place the pages take their labels from.

Pure (no database, no streamlit), so pages, reports and tests share it. The database and
the CSV exports keep the codes (`in_progress`, `eu`, `dana.lee@…`); only what a person
reads on a page goes through here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime

import pandas as pd

# What an empty cell shows: a dash reads as "nothing here", "None" reads as a bug.
MISSING = "—"

PLAN_STATUS_LABELS: dict[str, str] = {
    "not_started": "Not started",
    "in_progress": "In progress",
    "at_risk": "At risk",
    "blocked": "Blocked",
    "done": "Done",
}
SHARE_LINK_STATUS_LABELS: dict[str, str] = {"active": "Active", "expired": "Expired", "revoked": "Revoked"}
REGION_LABELS: dict[str, str] = {
    "na": "North America",
    "eu": "Europe",
    "apac": "Asia-Pacific",
    "latam": "Latin America",
    "mea": "Middle East & Africa",
}
ROLE_LABELS: dict[str, str] = {
    "admin": "Admin",
    "security_lead": "Security lead",
    "account_manager": "Account manager",
    "executive": "Executive",
}
# Tenants of unmanaged tiers carry this address instead of a person's.
SELF_SERVE = "self-serve@lockstep.example"
SELF_SERVE_LABEL = "Self-serve"
# The plan YAML marks where an owner came from; people reading the page need only the owner.
_OWNER_TAG = re.compile(r"\s*\((named|inferred)\)\s*$", re.IGNORECASE)
_CODE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$")


def code_words(code: str | None) -> str:
    """Any snake_case code in plain words ('rolled_back' -> 'Rolled back'); MISSING for none."""
    if is_missing(code):
        return MISSING
    return str(code).replace("_", " ").capitalize()


def looks_like_code(text: str) -> bool:
    """True for a raw snake_case code such as 'in_progress' (what a label should have replaced)."""
    return bool(_CODE.match(text or ""))


def plan_status_label(status: str | None) -> str:
    """A plan item status in words: 'in_progress' -> 'In progress'."""
    return MISSING if is_missing(status) else PLAN_STATUS_LABELS.get(status, code_words(status))


def share_link_status_label(status: str | None) -> str:
    """A share link's state in words."""
    return MISSING if is_missing(status) else SHARE_LINK_STATUS_LABELS.get(status, code_words(status))


def role_label(role: str | None) -> str:
    """A role code in words: 'security_lead' -> 'Security lead'."""
    return MISSING if is_missing(role) else ROLE_LABELS.get(role, code_words(role))


def region_label(region: str | None) -> str:
    """A region code as its name: 'eu' -> 'Europe' (an unknown code is shown upper-case)."""
    if is_missing(region):
        return MISSING
    return REGION_LABELS.get(region, str(region).upper())


def tier_label(tier: str | None, names: Mapping[str, str]) -> str:
    """A tier code as the plan names it ('business' -> 'Business'), from `names` (code -> name)."""
    if is_missing(tier):
        return MISSING
    return names.get(tier) or code_words(tier)


def person_label(email: str | None, names: Mapping[str, str]) -> str:
    """Who an e-mail belongs to, by name ('Dana Lee'); the address itself when nobody has that name."""
    if is_missing(email):
        return MISSING
    if email == SELF_SERVE:
        return SELF_SERVE_LABEL
    return names.get(email) or str(email)


def owner_label(owner: str | None) -> str:
    """A plan owner without the plan file's '(named)' / '(inferred)' source tag."""
    if is_missing(owner):
        return MISSING
    return _OWNER_TAG.sub("", str(owner)) or MISSING


def is_missing(value) -> bool:
    """True for None, NaN, NaT and pd.NA (what would otherwise show as 'None' or 'nan')."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def fmt_int(n) -> str:
    """A count with thousands separators: 6571 -> '6,571'."""
    return MISSING if is_missing(n) else f"{int(n):,}"


def fmt_seats(n) -> str:
    """Seats as people say it: '6,571 seats' (one seat: '1 seat')."""
    if is_missing(n):
        return MISSING
    return f"{int(n):,} seat{'' if int(n) == 1 else 's'}"


def fmt_pct(value, digits: int = 1) -> str:
    """A percentage already in percent: 94.87 -> '94.9%'."""
    return MISSING if is_missing(value) else f"{value:.{digits}f}%"


def fmt_date(value) -> str:
    """A date (or the date of a datetime) as '30 Jun 2020'; MISSING for none."""
    if is_missing(value):
        return MISSING
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        value = value.date()
    return f"{value.day} {value:%b %Y}"


def fmt_datetime(value) -> str:
    """A UTC time as '30 Jun 2020 14:05 UTC'; MISSING for none."""
    if is_missing(value):
        return MISSING
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    return f"{fmt_date(value)} {value:%H:%M} UTC"


def fmt_days(n: int) -> str:
    """A number of days: '1 day', '31 days'."""
    return f"{n:,} day{'' if abs(n) == 1 else 's'}"


def days_left_label(n: int) -> str:
    """Days to a deadline, short enough for a metric: '12 days left', 'today', '31 days ago'."""
    if n == 0:
        return "today"
    return f"{fmt_days(n)} left" if n > 0 else f"{fmt_days(-n)} ago"


def points_delta(change: float | None, *, unit: str = "pts", digits: int = 1) -> dict:
    """st.metric keyword arguments for a change in percentage points of a progress share.

    Rounds first, so a change that shows as 0.0 is grey with no arrow ('±0.0 pts'), never
    green; a rise is green and a fall red.
    """
    if change is None or is_missing(change):
        return {"delta": None}
    shown = round(float(change), digits)
    if shown == 0:
        return {"delta": f"±{0:.{digits}f} {unit}", "delta_color": "gray", "delta_arrow": "off"}
    return {"delta": f"{shown:+.{digits}f} {unit}", "delta_color": "normal"}


def count_delta(change: int | None, *, higher_is_better: bool | None = True) -> dict:
    """st.metric keyword arguments for a change in a count.

    No change is grey. `higher_is_better` False (at risk, overdue, blocked, the first stage)
    turns a rise red; None (a stage tenants pass through, where a fall often means they
    moved on) keeps it grey either way.
    """
    if change is None or is_missing(change):
        return {"delta": None}
    change = int(change)
    if higher_is_better is None:
        return {"delta": change, "delta_color": "gray"}
    return {"delta": change, "delta_color": "normal" if higher_is_better else "inverse"}


def deadline_delta(days_late: int | None) -> dict:
    """st.metric keyword arguments for a date against its deadline: red after it, green before."""
    if days_late is None:
        return {"delta": None}
    if days_late == 0:
        return {"delta": "on the deadline", "delta_color": "gray", "delta_arrow": "off"}
    word, color = ("after", "red") if days_late > 0 else ("before", "green")
    return {"delta": f"{fmt_days(abs(days_late))} {word} the deadline", "delta_color": color,
            "delta_arrow": "off"}


def done_of_due(done: int, due: int) -> dict:
    """st.metric value and delta for plan items done against items due, never as 'done / due'.

    '8 / 4' reads as a fraction above one; this gives value '8' and a grey note
    '4 due by then, 4 done early'.
    """
    note = f"{due:,} due by then"
    if done > due:
        note += f", {done - due:,} done early"
    elif done < due:
        note += f", {due - done:,} behind"
    return {"value": f"{done:,}", "delta": note, "delta_color": "gray", "delta_arrow": "off"}


def label_frame(
    frame: pd.DataFrame,
    columns: Mapping[str, str],
    *,
    formatters: Mapping[str, object] | None = None,
) -> pd.DataFrame:
    """`frame` as people read it: only `columns` (code -> header), each formatted, no empty cells.

    `formatters` maps a column code to a function of one value; text columns without one
    get MISSING for empty cells. Numbers and dates without a formatter are left typed, so
    the table still sorts them right (give them a column_config format).
    """
    formatters = formatters or {}
    out = pd.DataFrame(index=frame.index)
    for code, header in columns.items():
        col = frame[code]
        if code in formatters:
            out[header] = [formatters[code](v) for v in col]
        elif col.dtype == object or pd.api.types.is_string_dtype(col):
            out[header] = [MISSING if is_missing(v) else v for v in col]
        else:
            out[header] = col
    return out.reset_index(drop=True)


class Names:
    """The names the database knows for codes (tiers) and e-mails (people), for one page run."""

    def __init__(self, *, tiers: Mapping[str, str] | None = None, people: Mapping[str, str] | None = None):
        self.tiers = dict(tiers or {})
        self.people = dict(people or {})

    def tier(self, code: str | None) -> str:
        """A tier code as its name."""
        return tier_label(code, self.tiers)

    def person(self, email: str | None) -> str:
        """An e-mail as its owner's name (the address when the person is unknown)."""
        return person_label(email, self.people)

    def region(self, code: str | None) -> str:
        """A region code as its name."""
        return region_label(code)


SIDE_STAGES = ("blocked", "rolled_back")


def next_stage_index(
    stages: Sequence[str],
    current: str | None,
    *,
    reached: str | None = None,
    side: Sequence[str] = SIDE_STAGES,
) -> int:
    """Where a 'stage reached' picker should start: the stage after `current` in `stages`.

    From a side stage (blocked, rolled back) the next is the one after `reached`, the last
    ordered stage the tenant reached; at the last stage it stays there; with no stage yet,
    the first.
    """
    if current in side:
        current = reached
    if current is None or current not in stages:
        return 0
    i = list(stages).index(current)
    return i + 1 if i + 1 < len(stages) and stages[i + 1] not in side else i


def clock_note(program_today: date, real_today: date) -> str | None:
    """Why dates on a page can be years apart: the rollout runs on the program's clock.

    None when the program's today is the real one (nothing to explain).
    """
    if program_today == real_today:
        return None
    return (
        f"Dates here have two clocks: rollout stages and 'status as of' follow the program's today "
        f"({fmt_date(program_today)}: LOCKSTEP_AS_OF, or the real date capped at the program's end); "
        f"notes and share links carry the real date they were written or stop working "
        f"(today {fmt_date(real_today)})."
    )


def contact_label(email: str, name: str = "") -> str:
    """A person to contact: 'Dana Lee (dana.lee@lockstep.example)', or the address alone."""
    if email == SELF_SERVE:
        return "our support team"
    return f"{name} ({email})" if name else email
