"""The rollout rules as a pure fold: events in time order -> the state they lead to.

Both the write path (record_event, imports) and the recomputation used by tests and
`audit`-style checks go through `apply_event`, so the rules live in exactly one place.

- An ordered stage at or after the last one reached moves the tenant there (skipping is
  allowed: a tenant may upgrade clients and enable GCM on the same day).
- An ordered stage before the last one reached is refused: going back is only possible
  as an explicit `rolled_back` event, which returns the tenant one stage back.
- `blocked` keeps the stage reached and marks the tenant blocked until its next event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

BLOCKED = "blocked"
ROLLED_BACK = "rolled_back"


@dataclass(frozen=True)
class TrackRules:
    """A track's ordered stages and the tiers it covers."""

    code: str
    stages: tuple[str, ...]
    tiers: frozenset[str]
    side_stages: tuple[str, ...] = (BLOCKED, ROLLED_BACK)

    @property
    def initial(self) -> str:
        """The stage every covered tenant starts in."""
        return self.stages[0]

    def position(self, stage: str) -> int:
        """Index of an ordered stage."""
        return self.stages.index(stage)

    def has_stage(self, stage: str) -> bool:
        """True for an ordered or side stage of this track."""
        return stage in self.stages or stage in self.side_stages


@dataclass(frozen=True)
class State:
    """Where a tenant stands on one track."""

    stage: str
    reached: str
    since: datetime | None = None


class RuleViolation(ValueError):
    """An event the rules do not allow; the message says why and what to do."""


def initial_state(rules: TrackRules, since: datetime | None = None) -> State:
    """The state of a covered tenant before any event."""
    return State(rules.initial, rules.initial, since)


def apply_event(rules: TrackRules, state: State, stage: str, at: datetime) -> State:
    """The state after `stage` is reached at `at`; RuleViolation if the rules forbid it."""
    if stage == BLOCKED:
        return State(BLOCKED, state.reached, at)
    if stage == ROLLED_BACK:
        pos = rules.position(state.reached)
        if pos == 0:
            raise RuleViolation(
                f"nothing to roll back: the tenant is still at the first stage "
                f"'{rules.initial}' of track '{rules.code}'"
            )
        return State(ROLLED_BACK, rules.stages[pos - 1], at)
    if stage not in rules.stages:
        raise RuleViolation(
            f"track '{rules.code}' has no stage '{stage}' "
            f"(stages: {', '.join(rules.stages + rules.side_stages)})"
        )
    if rules.position(stage) < rules.position(state.reached):
        raise RuleViolation(
            f"'{stage}' is before the stage already reached ('{state.reached}') on track "
            f"'{rules.code}'; going back needs an explicit '{ROLLED_BACK}' event"
        )
    return State(stage, stage, at)


def replay(rules: TrackRules, events: Iterable[tuple[datetime, str]], since: datetime | None = None) -> State:
    """Fold (occurred_at, stage) pairs, sorted by time, from the initial state."""
    state = initial_state(rules, since)
    for at, stage in events:
        state = apply_event(rules, state, stage, at)
    return state
