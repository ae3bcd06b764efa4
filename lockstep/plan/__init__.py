"""The program plan: YAML schema and loader, and the sync into the database."""

from lockstep.plan.loader import PlanInvalid, Problem, check_plan, load_plan, parse_plan
from lockstep.plan.schema import Plan

__all__ = ["Plan", "PlanInvalid", "Problem", "check_plan", "load_plan", "parse_plan"]
