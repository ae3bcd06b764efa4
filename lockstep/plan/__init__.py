"""The program plan: YAML schema and loader, and the sync into the database."""

from lockstep.plan.loader import PlanInvalid, Problem, check_plan, load_plan, parse_plan
from lockstep.plan.schema import Plan
from lockstep.plan.sync import SyncResult, sync_plan, sync_plan_file

__all__ = [
    "Plan",
    "PlanInvalid",
    "Problem",
    "SyncResult",
    "check_plan",
    "load_plan",
    "parse_plan",
    "sync_plan",
    "sync_plan_file",
]
