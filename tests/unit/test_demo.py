"""Demo data: deterministic, shaped like the 2020 program, and always legal under the rollout rules."""

from __future__ import annotations

from datetime import date, datetime
from itertools import groupby

import numpy as np
import pandas as pd
import pytest

from lockstep import demo
from lockstep.config import ROOT
from lockstep.demo import generate_demo
from lockstep.plan import load_plan
from lockstep.rollout_rules import RuleViolation, TrackRules, replay

TENANT_COLUMNS = [
    "external_id", "name", "tier", "region", "seats", "account_manager", "client_version", "features",
]
EVENT_COLUMNS = ["tenant_id", "track", "stage", "occurred_at", "source", "note"]
RULES = {
    track: TrackRules(track, demo.TRACK_STAGES[track], frozenset(demo.TRACK_TIERS[track]))
    for track in demo.TRACK_STAGES
}
START, END = datetime(2020, 4, 1), datetime(2020, 6, 30, 23, 59)


@pytest.fixture(scope="module")
def d5000() -> demo.DemoData:
    """The size `make run` loads."""
    return generate_demo(tenants=5000, seed=11, hostile_names=True)


def timelines(events: pd.DataFrame, tenants: set[str] | None = None):
    """(tenant, track) -> [(occurred_at, stage)] in the frame's own order."""
    frame = events if tenants is None else events[events["tenant_id"].isin(tenants)]
    rows = zip(
        frame["tenant_id"].astype(str),
        frame["track"].astype(str),
        frame["occurred_at"].dt.to_pydatetime(),
        frame["stage"].astype(str),
        strict=True,
    )
    ordered = sorted(rows, key=lambda r: (r[0], r[1]))  # stable: keeps each timeline's order
    grouped = groupby(ordered, key=lambda r: r[:2])
    return {key: [(at, stage) for _, _, at, stage in grp] for key, grp in grouped}


def assert_legal(events: pd.DataFrame, tenants: set[str] | None = None) -> int:
    """Every timeline strictly increases in time and replays without a RuleViolation."""
    checked = 0
    for (tenant, track), timeline in timelines(events, tenants).items():
        times = [at for at, _ in timeline]
        assert all(a < b for a, b in zip(times, times[1:], strict=False)), (tenant, track, timeline)
        try:
            replay(RULES[track], timeline)
        except RuleViolation as exc:
            pytest.fail(f"{tenant} {track}: {exc}\n{timeline}")
        checked += 1
    return checked


def test_columns_are_exactly_what_the_imports_take(d5000):
    assert list(d5000.tenants.columns) == TENANT_COLUMNS
    assert list(d5000.events.columns) == EVENT_COLUMNS
    assert d5000.tenants["external_id"].is_unique
    assert pd.api.types.is_integer_dtype(d5000.tenants["seats"])
    assert d5000.tenants["client_version"].str.fullmatch(r"\d+\.\d+\.\d+").all()
    assert set(d5000.events["tenant_id"].astype(str)) <= set(d5000.tenants["external_id"])


def test_same_seed_gives_identical_frames_and_another_seed_does_not():
    a = generate_demo(tenants=3000, seed=5)
    b = generate_demo(tenants=3000, seed=5)
    pd.testing.assert_frame_equal(a.tenants, b.tenants)
    pd.testing.assert_frame_equal(a.events, b.events)
    c = generate_demo(tenants=3000, seed=6)
    assert not a.tenants["name"].equals(c.tenants["name"])


def test_same_seed_is_identical_with_history_noise_too():
    a = generate_demo(tenants=500, seed=5, events_per_tenant=20)
    b = generate_demo(tenants=500, seed=5, events_per_tenant=20)
    pd.testing.assert_frame_equal(a.events, b.events)


def test_tier_and_region_mix_within_tolerance():
    tenants = generate_demo(tenants=40_000, seed=2).tenants
    share = tenants["tier"].value_counts(normalize=True)
    for tier, weight in zip(demo.TIERS, demo.TIER_WEIGHTS, strict=True):
        assert share[tier] == pytest.approx(weight, abs=0.01), tier
    assert set(tenants["region"]) == set(demo.REGIONS)


def test_seats_and_managers_fit_the_tier(d5000):
    t = d5000.tenants
    seats = t.groupby("tier")["seats"]
    assert seats.min()["free"] >= 1 and seats.max()["free"] <= 5
    assert seats.median()["enterprise"] >= 1000
    assert (t.loc[t["tier"].isin(["free", "pro"]), "account_manager"] == demo.SELF_SERVE).all()
    managed = t[t["tier"].isin(demo.MANAGED_TIERS)]
    managers = {email for email, _ in demo.ACCOUNT_MANAGERS}
    assert set(managed["account_manager"]) == managers  # every manager has a book


def test_every_timeline_obeys_the_rules_small_n(d5000):
    assert assert_legal(d5000.events) > 5000


def test_sampled_timelines_obey_the_rules_large_n():
    data = generate_demo(tenants=60_000, seed=3)
    ids = data.tenants["external_id"]
    sample = set(ids.sample(1500, random_state=1))
    # The rare paths (rolled back, blocked) are where rule bugs hide: check all of those.
    side = data.events[data.events["stage"].isin(["rolled_back", "blocked"])]
    assert assert_legal(data.events, sample | set(side["tenant_id"].astype(str))) > 1500


def test_history_noise_reaches_the_target_and_stays_legal():
    data = generate_demo(tenants=1500, seed=4, events_per_tenant=20)
    assert len(data.events) / 1500 == pytest.approx(20, rel=0.05)
    assert_legal(data.events)
    key = ["tenant_id", "track", "occurred_at", "stage"]
    assert not data.events.duplicated(key).any()


def test_no_duplicate_events_and_a_realistic_count(d5000):
    assert not d5000.events.duplicated(["tenant_id", "track", "occurred_at", "stage"]).any()
    assert 4 <= len(d5000.events) / 5000 <= 8


def test_no_e2ee_for_free_tenants_ever(d5000):
    free = set(d5000.tenants.loc[d5000.tenants["tier"] == "free", "external_id"])
    e2ee = d5000.events[d5000.events["track"] == "e2ee"]
    assert not set(e2ee["tenant_id"].astype(str)) & free
    assert len(e2ee) > 0


def test_event_times_stay_in_the_window(d5000):
    at = d5000.events["occurred_at"]
    assert at.min() >= START and at.max() <= END


def test_as_of_cuts_the_story_short():
    data = generate_demo(tenants=2000, seed=8, as_of=datetime(2020, 5, 15, 12, 0))
    assert data.events["occurred_at"].max() <= datetime(2020, 5, 15, 12, 0)
    assert not (data.events["stage"] == "gcm_enforced").any()
    assert not (data.events["track"] == "e2ee").any()  # the E2EE design is published 2020-05-22
    assert_legal(data.events)
    with pytest.raises(ValueError, match="before the program starts"):
        generate_demo(tenants=10, seed=1, as_of=datetime(2020, 3, 1))


def test_encryption_follows_the_2020_story(d5000):
    ev = d5000.events[d5000.events["track"] == "encryption"]
    median = ev.groupby("stage", observed=True)["occurred_at"].median()
    assert median["clients_upgraded"] > datetime(2020, 4, 27)  # 5.0 GA
    upgraded = ev.loc[ev["stage"] == "clients_upgraded", "occurred_at"]
    assert 0 < (upgraded < datetime(2020, 4, 27)).mean() < 0.06  # a few beta sites
    assert median["clients_upgraded"] < median["gcm_enabled"] < median["gcm_enforced"]
    enforced = ev.loc[ev["stage"] == "gcm_enforced", "occurred_at"]
    assert datetime(2020, 5, 23) <= enforced.median() <= datetime(2020, 6, 5)
    final = {key: tl[-1][1] for key, tl in timelines(ev).items()}
    states = pd.Series([replay(RULES["encryption"], tl).reached for tl in timelines(ev).values()])
    stragglers = states.isin(["legacy_cipher", "clients_upgraded"]).mean()
    assert 0.02 <= stragglers <= 0.07
    tenants_blocked = ev.loc[ev["stage"] == "blocked", "tenant_id"].nunique() / 5000
    assert 0.01 <= tenants_blocked <= 0.035
    rolled = ev.loc[ev["stage"] == "rolled_back", "tenant_id"].nunique() / 5000
    assert 0.002 <= rolled <= 0.012
    assert "gcm_enforced" in {s for s in final.values()}
    notes = ev.loc[ev["stage"].isin(["blocked", "rolled_back"]), "note"].astype(str)
    assert (notes.str.len() > 10).all()  # every side step says why


def test_client_version_matches_the_encryption_stage(d5000):
    ev = d5000.events[d5000.events["track"] == "encryption"]
    upgraded = set(ev.loc[ev["stage"] == "clients_upgraded", "tenant_id"].astype(str))
    t = d5000.tenants.set_index("external_id")["client_version"]
    assert t[t.index.isin(upgraded)].str.startswith("5.").all()
    assert t[~t.index.isin(upgraded)].str.startswith("4.").all()


def test_e2ee_blockers_name_a_feature_the_tenant_uses_and_block_most_of_them(d5000):
    t = d5000.tenants.set_index("external_id")
    ev = d5000.events[d5000.events["track"] == "e2ee"]
    blocked = ev[ev["stage"] == "blocked"]
    words = {
        "cloud_recording": "cloud recording", "phone_dialin": "phone dial-in",
        "join_before_host": "join before host", "web_client": "web client",
        "live_streaming": "live streaming", "breakout_rooms": "breakout rooms",
    }
    for tenant, note in zip(blocked["tenant_id"].astype(str), blocked["note"].astype(str), strict=True):
        used = t.at[tenant, "features"].split("|")
        assert "E2EE does not support" in note
        assert any(words[f] in note for f in used), (tenant, used, note)
    enabled = set(ev.loc[ev["stage"] == "enabled", "tenant_id"].astype(str))
    assert enabled and not any(set(t.at[x, "features"].split("|")) & set(words) for x in enabled)
    paid = t[t["tier"].isin(demo.PAID_TIERS)]
    with_blocker = paid[paid["features"] != ""].index
    assert len(set(blocked["tenant_id"].astype(str)) & set(with_blocker)) / len(with_blocker) > 0.6
    assert ev.loc[ev["stage"] == "pilot", "occurred_at"].min() > datetime(2020, 5, 22)
    by_tier = t.loc[sorted(enabled), "tier"].value_counts()
    assert by_tier.get("business", 0) + by_tier.get("enterprise", 0) > len(enabled) / 2


def test_the_demo_people_open_has_no_attack_names_but_the_tests_demo_has():
    plain = generate_demo(tenants=5000, seed=11).tenants
    hostile = generate_demo(tenants=5000, seed=11, hostile_names=True).tenants
    assert not plain["name"].isin(demo.HOSTILE_NAMES).any()
    assert not plain["name"].str.match(r"^[=+\-@<]").any()
    for name in demo.HOSTILE_NAMES:
        assert (hostile["name"] == name).any(), name
    # Only the names differ: every other draw, so every tenant's story, is the same.
    assert plain.drop(columns="name").equals(hostile.drop(columns="name"))


def test_names_that_exercise_safe_output_are_present(d5000):
    names = d5000.tenants["name"]
    for special in ("+Plus Dental", "=Equals Labs", "<b>Bold</b> Media"):
        assert (names == special).any(), special
    assert names.str.contains("'").any()
    assert names.str.contains("&").any()
    assert names.map(lambda s: not s.isascii()).any()
    assert names.str.len().max() <= 200
    assert names.str.match(r"^[=+\-@]").sum() <= 10  # rare: about 1 in 2000 at scale


def test_blocking_features_follow_the_plan_given():
    data = generate_demo(tenants=3000, seed=9, e2ee_blocking=["cloud_recording"])
    blocked = data.events[(data.events["track"] == "e2ee") & (data.events["stage"] == "blocked")]
    assert len(blocked) and blocked["note"].astype(str).str.contains("cloud recording").all()
    assert not blocked["note"].astype(str).str.contains("phone dial-in").any()


def test_demo_codes_match_the_shipped_plan():
    plan = load_plan(ROOT / "plan" / "90-day-plan.yaml")
    tracks = {t.id: t for t in plan.tracks}
    for code, stages in demo.TRACK_STAGES.items():
        assert tuple(tracks[code].stage_ids) == stages
        assert tuple(tracks[code].tiers) == demo.TRACK_TIERS[code]
    assert [t.id for t in plan.tiers] == list(demo.TIERS)
    assert set(tracks["e2ee"].blocking_features) <= set(demo.FEATURES)
    assert (plan.program.start, plan.program.end) == (demo.PROGRAM_START, demo.PROGRAM_END)


def test_zero_tenants_gives_empty_frames():
    data = generate_demo(tenants=0, seed=1)
    assert data.tenants.empty and data.events.empty
    assert list(data.events.columns) == EVENT_COLUMNS


def test_program_dates_shift_the_story():
    data = generate_demo(tenants=500, seed=1, program_start=date(2021, 1, 4), program_end=date(2021, 4, 3))
    at = data.events["occurred_at"]
    assert at.min() >= datetime(2021, 1, 4) and at.max() <= datetime(2021, 4, 3, 23, 59)
    assert_legal(data.events)
    assert np.isfinite(data.tenants["seats"]).all()
