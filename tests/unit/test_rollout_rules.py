"""The rollout rules as a pure fold."""

from datetime import datetime

import pytest

from lockstep.rollout_rules import RuleViolation, TrackRules, apply_event, initial_state, replay

ENC = TrackRules("encryption", ("legacy_cipher", "clients_upgraded", "gcm_enabled", "gcm_enforced"),
                 frozenset({"free", "pro"}))
T = [datetime(2020, 4, d) for d in range(1, 20)]


def test_forward_steps_and_skips_are_allowed():
    state = replay(ENC, [(T[0], "clients_upgraded"), (T[1], "gcm_enforced")])
    assert (state.stage, state.reached, state.since) == ("gcm_enforced", "gcm_enforced", T[1])


def test_a_step_backwards_is_refused_and_names_the_way_out():
    state = replay(ENC, [(T[0], "gcm_enabled")])
    with pytest.raises(RuleViolation, match="rolled_back"):
        apply_event(ENC, state, "clients_upgraded", T[1])


def test_rolled_back_returns_one_stage_and_allows_reaching_it_again():
    state = replay(ENC, [(T[0], "gcm_enforced"), (T[1], "rolled_back")])
    assert (state.stage, state.reached) == ("rolled_back", "gcm_enabled")
    state = apply_event(ENC, state, "gcm_enforced", T[2])
    assert state.stage == "gcm_enforced"


def test_rolled_back_from_the_first_stage_is_refused():
    with pytest.raises(RuleViolation, match="nothing to roll back"):
        apply_event(ENC, initial_state(ENC), "rolled_back", T[0])


def test_blocked_keeps_the_stage_reached():
    state = replay(ENC, [(T[0], "clients_upgraded"), (T[1], "blocked")])
    assert (state.stage, state.reached) == ("blocked", "clients_upgraded")
    with pytest.raises(RuleViolation):
        apply_event(ENC, state, "legacy_cipher", T[2])
    assert apply_event(ENC, state, "clients_upgraded", T[2]).stage == "clients_upgraded"


def test_unknown_stage_is_refused_with_the_list_of_stages():
    with pytest.raises(RuleViolation, match="has no stage 'gcm_maybe'.*legacy_cipher"):
        apply_event(ENC, initial_state(ENC), "gcm_maybe", T[0])
