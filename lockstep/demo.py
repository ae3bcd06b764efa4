"""Deterministic, believable demo data: tenants and rollout events shaped like Zoom's 2020 program.

Everything is drawn from one numpy Generator(PCG64(seed)) in a fixed order and built with
array operations, so the same arguments always give identical frames and a million
tenants take seconds. The story, with dates kept as offsets from the program's start:

- encryption (every tier): a baseline inventory on day 1-2 (legacy cipher), clients
  upgraded along an S-curve after Zoom 5.0 GA (2020-04-27; a few beta sites earlier),
  GCM enabled days later, GCM enforced clustered around the 2020-05-30 cut-over;
  ~4% stragglers, ~2% blocked with a reason, ~0.5% rolled back after enforcement (most
  re-enforced later).
- e2ee (paid tiers only): pilots from the design publication (2020-05-22) for a minority,
  enabled for fewer, mostly business and enterprise; tenants using a feature E2EE does not
  support are mostly blocked with a note naming the feature, never enabled.

Demo only: `load_demo` also creates users whose password is LOCKSTEP_DEMO_PASSWORD or
"lockstep-demo". Never load the demo into a database real people use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, time

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from lockstep.db import write_session
from lockstep.errors import LockstepError
from lockstep.models import Program, SnapshotWeek, Tenant, Tier, Track
from lockstep.permissions import Actor, require
from lockstep.services.rollout import load_track_rules
from lockstep.services.users import add_user_with_hash, get_user, hash_password

PROGRAM_START = date(2020, 4, 1)
PROGRAM_END = date(2020, 6, 30)

TIERS = ("free", "pro", "business", "enterprise", "education")
TIER_WEIGHTS = (0.55, 0.25, 0.12, 0.05, 0.03)
PAID_TIERS = ("pro", "business", "enterprise", "education")
REGIONS = ("na", "eu", "apac", "latam", "mea")
REGION_WEIGHTS = (0.45, 0.26, 0.17, 0.08, 0.04)

ENCRYPTION_STAGES = ("legacy_cipher", "clients_upgraded", "gcm_enabled", "gcm_enforced")
E2EE_STAGES = ("eligible", "pilot", "enabled")
BLOCKED, ROLLED_BACK = "blocked", "rolled_back"
TRACK_STAGES = {"encryption": ENCRYPTION_STAGES, "e2ee": E2EE_STAGES}
TRACK_TIERS = {"encryption": TIERS, "e2ee": PAID_TIERS}

ACCOUNT_MANAGERS = (
    ("dana.lee@lockstep.example", "Dana Lee"),
    ("marco.rossi@lockstep.example", "Marco Rossi"),
    ("priya.nair@lockstep.example", "Priya Nair"),
    ("sam.okafor@lockstep.example", "Sam Okafor"),
    ("lena.fischer@lockstep.example", "Lena Fischer"),
    ("kenji.watanabe@lockstep.example", "Kenji Watanabe"),
    ("sofia.alvarez@lockstep.example", "Sofía Álvarez"),
    ("tom.becker@lockstep.example", "Tom Becker"),
    ("aisha.rahman@lockstep.example", "Aisha Rahman"),
    ("chloe.martin@lockstep.example", "Chloé Martin"),
    ("noah.kim@lockstep.example", "Noah Kim"),
    ("erin.obrien@lockstep.example", "Erin O'Brien"),
)
# Books differ in size, as they do in real sales teams.
MANAGER_WEIGHTS = (1.3, 1.2, 1.15, 1.1, 1.05, 1.0, 1.0, 0.95, 0.9, 0.85, 0.8, 0.7)
SELF_SERVE = "self-serve@lockstep.example"
MANAGED_TIERS = ("business", "enterprise", "education")
# One user per role (the e-mails the app tests act as) plus one per account manager.
DEMO_USERS = (
    ("admin@lockstep.example", "admin", "Avery Admin"),
    ("lead@lockstep.example", "security_lead", "Jordan Lead"),
    ("exec@lockstep.example", "executive", "Morgan Exec"),
) + tuple((email, "account_manager", name) for email, name in ACCOUNT_MANAGERS)
DEFAULT_DEMO_PASSWORD = "lockstep-demo"

FEATURES = (
    "cloud_recording",
    "phone_dialin",
    "join_before_host",
    "web_client",
    "live_streaming",
    "breakout_rooms",
)
# The features the shipped plan says E2EE could not support at launch; load_demo passes the
# synced track's own list, so the demo agrees with whatever plan the database holds.
E2EE_BLOCKING = FEATURES
_FEATURE_WORDS = {
    "cloud_recording": "cloud recording",
    "phone_dialin": "phone dial-in",
    "join_before_host": "join before host",
    "web_client": "the web client",
    "live_streaming": "live streaming",
    "breakout_rooms": "breakout rooms",
}
# Share of tenants using each feature (columns follow FEATURES), by tier (rows follow TIERS).
FEATURE_RATES = np.array(
    [
        [0.00, 0.05, 0.20, 0.08, 0.00, 0.15],  # free: no cloud recording or streaming on free
        [0.36, 0.20, 0.16, 0.11, 0.03, 0.18],
        [0.44, 0.30, 0.14, 0.09, 0.06, 0.22],
        [0.52, 0.42, 0.10, 0.08, 0.12, 0.28],
        [0.40, 0.22, 0.12, 0.12, 0.06, 0.30],
    ]
)

# Seats: log-normal median and spread, then clipped, by tier.
_SEATS = {  # tier: (median, sigma, min, max)
    "free": (1.6, 0.6, 1, 5),
    "pro": (3.0, 0.6, 1, 9),
    "business": (45.0, 0.9, 10, 1_500),
    "enterprise": (2_500.0, 1.0, 250, 120_000),
    "education": (600.0, 1.2, 20, 60_000),
}

SOURCES = ("mdm-sync", "admin-console", "support-ticket")
MDM, CONSOLE, TICKET = range(3)

_DAY = 86_400
_HOUR = 3_600
_STORY_START = date(2020, 4, 1)


def _at(d: date, hours: float = 0.0) -> int:
    """Seconds from the program's start to a milestone of the 2020 story (kept as an offset)."""
    return (d - _STORY_START).days * _DAY + int(hours * _HOUR)


BETA = _at(date(2020, 4, 14))  # a few sites ran 5.0 before GA
GA_5_0 = _at(date(2020, 4, 27))
ENFORCE_FROM, ENFORCE_CENTRE, ENFORCE_TO = (
    _at(date(2020, 5, 23)),
    _at(date(2020, 5, 28)),
    _at(date(2020, 6, 5)),
)
E2EE_DESIGN = _at(date(2020, 5, 22))

# Per-tier behaviour (follows TIERS). Managed fleets move slower and break more.
UPGRADE_PACE = np.array([0.8, 0.9, 1.1, 1.6, 1.35])
STRAGGLER_P = np.array([0.040, 0.030, 0.032, 0.060, 0.050])
BLOCKED_P = np.array([0.015, 0.015, 0.030, 0.060, 0.040])
ROLLBACK_P = np.array([0.003, 0.004, 0.010, 0.020, 0.015])
PILOT_P = np.array([0.0, 0.07, 0.25, 0.40, 0.16])
ENABLE_P = np.array([0.0, 0.35, 0.55, 0.65, 0.40])

# Client releases (real dates): the lowest version a tenant runs after upgrading.
RELEASES_5 = (
    ("5.0.0", date(2020, 4, 14)),
    ("5.0.1", date(2020, 4, 30)),
    ("5.0.2", date(2020, 5, 4)),
    ("5.0.3", date(2020, 5, 12)),
    ("5.0.4", date(2020, 5, 19)),
    ("5.0.5", date(2020, 5, 28)),
    ("5.1.0", date(2020, 6, 8)),
    ("5.1.1", date(2020, 6, 15)),
)
LEGACY_VERSIONS = ("4.4.5", "4.5.2", "4.6.4", "4.6.7", "4.6.8", "4.6.9", "4.6.10", "4.6.11", "4.6.12")
LEGACY_WEIGHTS = (0.03, 0.05, 0.08, 0.10, 0.12, 0.14, 0.20, 0.16, 0.12)

ENC_BLOCK_NOTES = (
    (  # while still on the legacy cipher
        "customer change freeze until June",
        "VDI plugin pinned to 4.6 by customer IT",
        "waiting on customer security review of the 5.0 client",
        "kiosk devices cannot self-update; needs on-site visit",
    ),
    (  # clients upgraded, GCM not yet on
        "on-prem connector 4.x cannot negotiate GCM",
        "H.323/SIP room connector needs a firmware update before GCM",
        "customer change freeze until June",
    ),
    (  # GCM enabled, not yet enforced
        "third-party recording bot fails on GCM-only meetings",
        "customer asked to delay enforcement until their board meeting",
        "on-prem connector 4.x cannot negotiate GCM",
    ),
)
ROLLBACK_NOTES = (
    "room systems failed to join after enforcement",
    "VDI clients dropped from meetings after enforcement",
    "on-prem meeting connector rejected GCM sessions",
)
REENFORCE_NOTES = (
    "re-enforced after room system firmware update",
    "re-enforced after connector upgrade to 5.0",
)

# fmt: off
# About one tenant in 2000 gets a name real customers have and naive code gets wrong
# (quotes, commas, ampersands, non-Latin scripts). At least one of each in any demo big enough.
SPECIAL_NAMES = (
    'The "Quoted" Agency',
    "Comma, Semicolon; & Co.",
    "O'Reilly & Daughters Bakery",
    "Zoë's Café & Crêperie",
    "株式会社 Sakura Trading",
)
# Names built to attack the output (formula injection, HTML): the tests load them with
# hostile_names=True; the demo people open first does not, so they never sort first there.
HOSTILE_NAMES = (
    "+Plus Dental",
    "=Equals Labs",
    "<b>Bold</b> Media",
    "-Minus Records",
    "@Home Care Services",
    "<script>alert(1)</script> Security",
)

_NAME_HEADS = (
    "Acorn", "Alder", "Amber", "Anchor", "Apex", "Arbor", "Aspen", "Atlas", "Aurora", "Bay", "Beacon",
    "Birch", "Blue Harbor", "Bluebird", "Boulder", "Brightwater", "Brook", "Cascade", "Cedar", "Clearview",
    "Cobalt", "Copper", "Coral", "Crescent", "Crown", "Cypress", "Delta", "Driftwood", "Eagle", "Elm",
    "Ember", "Evergreen", "Falcon", "Fernwood", "Fjord", "Foxglove", "Garnet", "Glacier", "Golden Gate",
    "Granite", "Greenfield", "Harbor", "Hawthorn", "Heron", "Highland", "Horizon", "Indigo", "Iron",
    "Ivy", "Juniper", "Keystone", "Lakeside", "Lantern", "Laurel", "Liberty", "Lighthouse", "Linden",
    "Magnolia", "Maple", "Meadow", "Meridian", "Mesa", "Midland", "Monarch", "North Star", "Northgate",
    "Oak", "Oakridge", "Orchard", "Pacific", "Paragon", "Pine", "Pinnacle", "Pioneer", "Prairie", "Quarry",
    "Quill", "Raven", "Redwood", "Ridgeline", "Riverbend", "Rosewood", "Sable", "Sage", "Sequoia",
    "Silverline", "Skyline", "Sparrow", "Spruce", "Stonebridge", "Summit", "Sunrise", "Tamarack", "Thistle",
    "Timber", "Trillium", "Tundra", "Union", "Valley", "Vantage", "Verde", "Westwind", "Willow", "Zephyr",
    "O'Brien", "O'Neill", "D'Angelo", "McAllister", "Okafor", "Nakamura", "Haddad", "Kowalski", "Lindqvist",
    "Müller", "Gonçalves", "Nuñez", "Søndergaard", "Dubois", "Björk", "Jiménez", "Łukasiewicz", "Nguyễn",
    "Ferreira", "Rossi", "Schäfer", "Ibáñez", "Petrović", "Çelik", "Yılmaz", "Håkansson", "Zürich",
    "Québec", "São Paulo", "Malmö", "Kraków", "Montréal", "Reykjavík", "Düsseldorf",
)
_NAME_TRADES = (
    "Dental", "Labs", "Logistics", "Health", "Legal", "Capital", "Media", "Analytics", "Robotics", "Bakery",
    "Architects", "Consulting", "Realty", "Insurance", "Biotech", "Pharma", "Foods", "Motors", "Energy",
    "Solar", "Software", "Systems", "Studios", "Design", "Travel", "Fitness", "Clinic", "Veterinary",
    "Accounting", "Engineering", "Construction", "Marine", "Aviation", "Telecom", "Publishing", "Printing",
    "Textiles", "Apparel", "Furniture", "Brewing", "Coffee Roasters", "Pediatrics", "Orthodontics",
    "Physical Therapy", "Tutoring", "Recruiting", "Security", "Semiconductors", "Outfitters", "Hospitality",
    "Catering", "Events", "Holdings", "Ventures", "Trust", "Credit Union", "Wealth Management",
    "Family Dentistry", "Tax & Advisory", "Bed & Breakfast", "Arts & Crafts", "Title & Escrow",
)
_NAME_SUFFIXES = (
    "", "", "", "", "", " Inc.", " Inc.", " LLC", " LLC", " Ltd", " GmbH", " Group", " & Co.", " & Partners",
    " S.A.", " Pty Ltd", " AB", " B.V.", " K.K.", " S.r.l.", " Oy", " PLC", " SAS", " Ltda.",
)
_EDU_PATTERNS = (
    "University of {}", "{} Community College", "{} School District", "{} Academy", "{} State University",
    "{} Institute of Technology", "{} Unified Schools", "{} Conservatory",
)
_PLACES = (
    "Ashford", "Brookhaven", "Cedar Falls", "Clearwater", "Eastfield", "Fairview", "Glenwood", "Greenville",
    "Hillcrest", "Kingsport", "Lakewood", "Maplewood", "Millbrook", "Northfield", "Oakdale", "Riverside",
    "Springfield", "Westbrook", "Whitmore", "Zürich", "Québec", "São Paulo", "Malmö", "Kraków", "Montréal",
    "Reykjavík", "Córdoba", "Düsseldorf", "Århus", "Coimbra", "Tromsø", "Saint-Étienne", "Bogotá", "Łódź",
    "Osaka", "Nairobi", "Lagos", "Pune", "Auckland", "Cape Town", "Dubai", "Perth", "Lisbon", "Leuven",
)
_FIRST = (
    "Alex", "Amara", "Ana", "Ben", "Björn", "Carmen", "Chen", "Chloé", "Daniel", "Divya", "Elif", "Emma",
    "Fatima", "François", "Grace", "Hana", "Hiroshi", "Ines", "Isaac", "Jamal", "José", "Julia", "Kofi",
    "Lars", "Léa", "Liam", "Lucía", "Mai", "Maria", "Mateo", "Mia", "Nadia", "Noor", "Olivia", "Omar",
    "Pablo", "Priya", "Rafael", "Renée", "Rohan", "Sara", "Siobhán", "Sven", "Tariq", "Thanh", "Uma",
    "Victor", "Wei", "Yusuf", "Zoë",
)
_LAST = (
    "Adeyemi", "Alvarez", "Andersson", "Bianchi", "Brown", "Chen", "Cohen", "D'Souza", "Dubois", "Edwards",
    "Fernández", "Fischer", "García", "Gupta", "Haddad", "Hansen", "Ivanova", "Jensen", "Kim", "Kowalski",
    "Larsen", "Lee", "López", "MacDonald", "Martin", "Müller", "Nakamura", "Nguyễn", "Novak", "O'Connor",
    "O'Sullivan", "Okafor", "Patel", "Pereira", "Petrov", "Rahman", "Reyes", "Rossi", "Santos", "Schmidt",
    "Silva", "Singh", "Smith", "Søren", "Tanaka", "Taylor", "Walsh", "Wang", "Weber", "Yılmaz",
)
_GROUP_PATTERNS = ("{} Book Club", "{} Running Club", "{} Choir", "{} Youth Soccer", "{} Garden Society")
# fmt: on


@dataclass(frozen=True)
class DemoData:
    """Generated tenants and events, with exactly the columns the CSV imports take."""

    tenants: pd.DataFrame
    events: pd.DataFrame


class _Notes:
    """Interns note strings so events carry small integer codes until the frame is built."""

    def __init__(self) -> None:
        self.strings: list[str] = [""]
        self._index = {"": 0}

    def code(self, text: str) -> int:
        if text not in self._index:
            self._index[text] = len(self.strings)
            self.strings.append(text)
        return self._index[text]

    def codes(self, texts) -> np.ndarray:
        return np.array([self.code(t) for t in texts], dtype=np.int32)


@dataclass
class _Slot:
    """One possible event per tenant: present where `mask`, at `at` seconds from program start."""

    track: int
    stage: str
    at: np.ndarray
    mask: np.ndarray
    source: np.ndarray | int
    note: np.ndarray | int = 0

    def rows(self) -> _Rows:
        """The events this slot holds, one per tenant where present."""
        idx = np.flatnonzero(self.mask)
        pick = {
            k: v[idx] if isinstance(v, np.ndarray) else v for k, v in (("s", self.source), ("n", self.note))
        }
        return _Rows(self.track, self.stage, idx, self.at[idx], pick["s"], pick["n"])


@dataclass
class _Rows:
    """Events of one track and stage: tenant indices, seconds from program start, source and note codes."""

    track: int
    stage: str
    tenant: np.ndarray
    at: np.ndarray
    source: np.ndarray | int
    note: np.ndarray | int = 0


def _pick(rng: np.random.Generator, options: np.ndarray, n: int) -> np.ndarray:
    return options[rng.integers(0, len(options), n)]


def _secs(rng: np.random.Generator, mean_days: float, n: int) -> np.ndarray:
    return (rng.exponential(mean_days * _DAY, n)).astype(np.int64)


def _cascade(slots: list[_Slot], gap: int = 60) -> None:
    """Make present times strictly increasing along the slot order (at least `gap` s apart)."""
    prev = None
    for slot in slots:
        if prev is not None:
            slot.at = np.where(slot.mask, np.maximum(slot.at, prev + gap), slot.at)
            prev = np.where(slot.mask, slot.at, prev)
        else:
            prev = np.where(slot.mask, slot.at, np.int64(-(10**12)))


def _names(rng: np.random.Generator, tier: np.ndarray, *, hostile: bool = False) -> np.ndarray:
    """Company, school, personal and club names fitting each tenant's tier (and HOSTILE_NAMES if asked)."""
    n = len(tier)
    companies = np.array(
        [f"{h} {t}{s}" for h in _NAME_HEADS for t in _NAME_TRADES for s in _NAME_SUFFIXES], dtype=object
    )
    schools = np.array([p.format(place) for p in _EDU_PATTERNS for place in _PLACES], dtype=object)
    people = np.array([f"{f} {ln}" for f in _FIRST for ln in _LAST], dtype=object)
    groups = np.array(
        [p.format(x) for p in _GROUP_PATTERNS for x in _PLACES]
        + [f"{ln} Family" for ln in _LAST]
        + [f"{ln} Consulting" for ln in _LAST],
        dtype=object,
    )
    names = _pick(rng, companies, n)
    kind = rng.random(n)
    free = tier == TIERS.index("free")
    names = np.where(free & (kind < 0.45), _pick(rng, people, n), names)
    names = np.where(free & (kind >= 0.45) & (kind < 0.65), _pick(rng, groups, n), names)
    names = np.where(tier == TIERS.index("pro"), np.where(kind < 0.15, _pick(rng, people, n), names), names)
    names = np.where(tier == TIERS.index("education"), _pick(rng, schools, n), names)
    pool = SPECIAL_NAMES + HOSTILE_NAMES if hostile else SPECIAL_NAMES
    # As many drawn either way, so both demos share every other random draw (and tenant).
    specials = min(n, max(len(SPECIAL_NAMES + HOSTILE_NAMES), n // 2000))
    if specials:
        where = rng.choice(n, size=specials, replace=False)
        names[where] = np.array(pool, dtype=object)[np.arange(specials) % len(pool)]
    return names


def _encryption_slots(rng, tier, notes: _Notes) -> list[_Slot]:
    """The encryption track's possible events per tenant, in timeline order."""
    n = len(tier)
    t0 = rng.integers(0, int(1.5 * _DAY), n)  # baseline inventory, first two days
    early = rng.random(n) < 0.03
    delay = rng.lognormal(np.log(6 * _DAY), 0.8, n) * UPGRADE_PACE[tier]
    t_up = np.where(early, BETA + rng.integers(0, GA_5_0 - BETA, n), GA_5_0 + delay).astype(np.int64)

    stop = np.full(n, 3, dtype=np.int8)  # the last ordered stage the tenant ever reaches
    strag = rng.random(n) < STRAGGLER_P[tier]
    stop[strag] = np.where(rng.random(n)[strag] < 0.55, 0, 1)
    blk = rng.random(n) < BLOCKED_P[tier]
    block_at = np.minimum(rng.choice(3, size=n, p=[0.5, 0.35, 0.15]).astype(np.int8), stop)
    unresolved = blk & (rng.random(n) < 0.35)
    stop = np.where(unresolved, np.minimum(stop, block_at), stop)
    resume = _DAY + _secs(rng, 6, n)

    # Blocked on the legacy cipher: the attempt to upgrade is what hit the wall.
    t_b0 = np.maximum(t0 + _HOUR, t_up - rng.integers(_DAY, 7 * _DAY, n))
    t_up = np.where(blk & (block_at == 0), np.maximum(t_up, t_b0 + resume), t_up)
    t_b1 = t_up + 2 * _HOUR + _secs(rng, 2, n)
    t_en = t_up + 2 * _HOUR + _secs(rng, 2.5, n)
    t_en = np.where(blk & (block_at == 1), np.maximum(t_en, t_b1 + resume), t_en)
    t_b2 = t_en + 2 * _HOUR + _secs(rng, 2, n)
    t_enf = np.clip(ENFORCE_CENTRE + rng.normal(0, 2.5 * _DAY, n), ENFORCE_FROM, ENFORCE_TO).astype(np.int64)
    t_enf = np.maximum(t_enf, t_en + 6 * _HOUR + _secs(rng, 1, n))
    t_enf = np.where(blk & (block_at == 2), np.maximum(t_enf, t_b2 + resume), t_enf)
    rb = (stop == 3) & (rng.random(n) < ROLLBACK_P[tier])
    t_rb = t_enf + _HOUR + _secs(rng, 0.5, n)
    again = rb & (rng.random(n) < 0.65)
    t_re = t_rb + _DAY + _secs(rng, 4, n)

    block_notes = [notes.codes(group) for group in ENC_BLOCK_NOTES]
    up_source = np.where(rng.random(n) < 0.85, MDM, CONSOLE)
    en_source = np.where(rng.random(n) < 0.7, CONSOLE, MDM)
    enf_source = np.where(rng.random(n) < 0.6, CONSOLE, MDM)
    blk_source = np.where(rng.random(n) < 0.8, TICKET, CONSOLE)
    baseline = notes.code("baseline inventory: meetings use AES-128-ECB")
    slots = [_Slot(0, ENCRYPTION_STAGES[0], t0, np.ones(n, dtype=bool), MDM, baseline)]
    stage_times = (t_up, t_en, t_enf)
    block_times = (t_b0, t_b1, t_b2)
    for k in range(3):
        slots.append(
            _Slot(
                0, BLOCKED, block_times[k], blk & (block_at == k), blk_source, _pick(rng, block_notes[k], n)
            )
        )
        source = (up_source, en_source, enf_source)[k]
        slots.append(_Slot(0, ENCRYPTION_STAGES[k + 1], stage_times[k], stop >= k + 1, source))
    slots.append(_Slot(0, ROLLED_BACK, t_rb, rb, TICKET, _pick(rng, notes.codes(ROLLBACK_NOTES), n)))
    slots.append(
        _Slot(0, ENCRYPTION_STAGES[3], t_re, again, CONSOLE, _pick(rng, notes.codes(REENFORCE_NOTES), n))
    )
    return slots


def _feature_phrases() -> list[str]:
    """For each combination of FEATURES (bit k = FEATURES[k]): the features named in plain English."""
    phrases = []
    for mask in range(1 << len(FEATURES)):
        words = [_FEATURE_WORDS[f] for k, f in enumerate(FEATURES) if mask >> k & 1]
        head, last = ", ".join(words[:-1]), words[-1] if words else ""
        phrases.append(f"{head} and {last}" if head else last)
    return phrases


def _e2ee_slots(rng, tier, feature_bits, blocking_mask: int, notes: _Notes) -> list[_Slot]:
    """The E2EE track's possible events per tenant (paid tiers only), in timeline order."""
    n = len(tier)
    paid = tier != TIERS.index("free")
    blocking = feature_bits & blocking_mask
    has_blocker = blocking != 0
    # Tenants with nothing in the way volunteer for pilots far more often.
    pilot = paid & (rng.random(n) < PILOT_P[tier] * np.where(has_blocker, 0.7, 1.8))
    t_pilot = E2EE_DESIGN + _DAY + _secs(rng, 8, n)
    pilot_blocked = pilot & has_blocker & (rng.random(n) < 0.9)
    review_blocked = paid & ~pilot & has_blocker & (rng.random(n) < 0.8)
    t_review = E2EE_DESIGN + _DAY + rng.integers(0, 35 * _DAY, n)
    t_blk = np.where(pilot, t_pilot + _DAY + _secs(rng, 3, n), t_review)
    enabled = pilot & ~has_blocker & (rng.random(n) < ENABLE_P[tier])
    t_enabled = t_pilot + 2 * _DAY + _secs(rng, 6, n)

    phrases = _feature_phrases()
    review_notes = notes.codes(f"uses {p}, which E2EE does not support yet" if p else "" for p in phrases)
    pilot_notes = notes.codes(
        f"pilot paused: uses {p}, which E2EE does not support yet" if p else "" for p in phrases
    )
    blk_note = np.where(pilot, pilot_notes[blocking], review_notes[blocking])
    blk_source = np.where(pilot, TICKET, CONSOLE)
    return [
        _Slot(1, "pilot", t_pilot, pilot, CONSOLE, notes.code("pilot group: IT and security staff")),
        _Slot(1, BLOCKED, t_blk, pilot_blocked | review_blocked, blk_source, blk_note),
        _Slot(1, "enabled", t_enabled, enabled, CONSOLE),
    ]


def _client_versions(rng, up_slot: _Slot, horizon: int) -> np.ndarray:
    """Lowest client version per tenant as of the horizon: 5.x after the upgrade, 4.x before."""
    n = len(up_slot.at)
    legacy = np.array(LEGACY_VERSIONS, dtype=object)[
        rng.choice(len(LEGACY_VERSIONS), size=n, p=LEGACY_WEIGHTS)
    ]
    release_at = np.array([_at(d) for _, d in RELEASES_5])
    newest = np.clip(np.searchsorted(release_at, up_slot.at, side="right") - 1, 0, None)
    lag = (rng.random(n) < 0.4).astype(np.int64)  # some machines lag one release behind
    upgraded = np.array([v for v, _ in RELEASES_5], dtype=object)[np.clip(newest - lag, 0, None)]
    return np.where(up_slot.mask & (up_slot.at <= horizon), upgraded, legacy)


def _confirmations(rng, slots: list[_Slot], horizon: int, n: int, per_event: float) -> list[_Rows]:
    """Repeat ordered stages (a later sync seeing the same stage again) between an event and the next."""
    extra: list[_Rows] = []
    nxt = np.full(n, horizon, dtype=np.int64)
    gaps = []
    for slot in reversed(slots):
        gaps.append(nxt - slot.at)
        nxt = np.where(slot.mask, slot.at, nxt)
    gaps.reverse()
    for slot, gap in zip(slots, gaps, strict=True):
        if slot.stage in (BLOCKED, ROLLED_BACK):
            continue  # repeating rolled_back would roll back again; repeating blocked adds nothing
        count = np.where(slot.mask, rng.poisson(per_event, n), 0)
        # Keep repeats >= 2 minutes apart so rounding never makes two share a time.
        count = np.minimum(count, np.maximum(gap // 120 - 1, 0))
        owner = np.repeat(np.arange(n), count)
        if not len(owner):
            continue
        first = np.cumsum(count) - count
        j = np.arange(len(owner)) - np.repeat(first, count)
        frac = (j + rng.uniform(0.25, 0.75, len(owner))) / (count[owner] + 1)
        at = slot.at[owner] + (gap[owner] * frac).astype(np.int64)
        extra.append(_Rows(slot.track, slot.stage, owner, at, MDM))
    return extra


def generate_demo(
    *,
    tenants: int,
    seed: int,
    program_start: date = PROGRAM_START,
    program_end: date = PROGRAM_END,
    as_of: datetime | None = None,
    events_per_tenant: float | None = None,
    e2ee_blocking: tuple[str, ...] | list[str] = E2EE_BLOCKING,
    hostile_names: bool = False,
) -> DemoData:
    """Tenants and rollout events for a demo; the same arguments always give identical frames.

    tenants columns: external_id, name, tier, region, seats, account_manager, client_version,
    features ('|'-separated). events columns: tenant_id (the external id), track, stage,
    occurred_at (naive UTC), source, note; sorted by occurred_at, text columns categorical (cheap
    at 20M rows; `.astype(str)` gives plain strings). `events_per_tenant` (off by
    default, ~4-5 without it) adds repeated confirmations of the current stage to reach that
    average, for scale tests. `e2ee_blocking`: the features that keep a tenant off E2EE.
    `hostile_names` mixes in HOSTILE_NAMES (tests of safe output; never the demo people open).
    """
    if tenants < 0:
        raise ValueError(f"tenants must be 0 or more, not {tenants}")
    start = datetime.combine(program_start, time())
    as_of = as_of or datetime.combine(program_end, time(23, 59))
    horizon = int((as_of - start).total_seconds())
    if horizon < 0:
        raise ValueError(f"as_of {as_of:%Y-%m-%d %H:%M} is before the program starts ({program_start})")
    n = tenants
    rng = np.random.Generator(np.random.PCG64(seed))
    notes = _Notes()

    tier = rng.choice(len(TIERS), size=n, p=TIER_WEIGHTS).astype(np.int64)
    region = rng.choice(len(REGIONS), size=n, p=REGION_WEIGHTS).astype(np.int64)
    params = np.array([_SEATS[t] for t in TIERS])
    seats = np.exp(np.log(params[tier, 0]) + params[tier, 1] * rng.standard_normal(n))
    seats = np.clip(np.rint(seats), params[tier, 2], params[tier, 3]).astype(np.int64)
    weights = np.array(MANAGER_WEIGHTS) / sum(MANAGER_WEIGHTS)
    manager = rng.choice(len(ACCOUNT_MANAGERS), size=n, p=weights)
    managed = np.isin(tier, [TIERS.index(t) for t in MANAGED_TIERS])
    manager = np.where(managed, manager, len(ACCOUNT_MANAGERS))
    uses = rng.random((n, len(FEATURES))) < FEATURE_RATES[tier]
    feature_bits = (uses * (1 << np.arange(len(FEATURES)))).sum(axis=1).astype(np.int64)
    feature_text = np.array(
        ["|".join(f for k, f in enumerate(FEATURES) if m >> k & 1) for m in range(1 << len(FEATURES))],
        dtype=object,
    )
    names = _names(rng, tier, hostile=hostile_names)

    slots = _encryption_slots(rng, tier, notes)
    enc_count = len(slots)
    blocking_mask = sum(1 << FEATURES.index(f) for f in set(e2ee_blocking) & set(FEATURES))
    slots += _e2ee_slots(rng, tier, feature_bits, blocking_mask, notes)
    _cascade(slots[:enc_count])
    _cascade(slots[enc_count:])
    for slot in slots:
        slot.mask = slot.mask & (slot.at <= horizon)
    versions = _client_versions(rng, next(s for s in slots if s.stage == "clients_upgraded"), horizon)

    events = _frame([slot.rows() for slot in slots])
    if events_per_tenant is not None and n:
        ordered = sum(int(s.mask.sum()) for s in slots if s.stage not in (BLOCKED, ROLLED_BACK))
        per_event = max(
            0.0, (events_per_tenant * n - sum(int(s.mask.sum()) for s in slots)) / max(ordered, 1)
        )
        enc_extra = _confirmations(rng, slots[:enc_count], horizon, n, per_event)
        e2ee_extra = _confirmations(rng, slots[enc_count:], horizon, n, per_event)
        events = _merge(events, _frame(enc_extra + e2ee_extra))

    external_ids = np.array([], dtype=str)
    if n:
        external_ids = np.char.add("T", np.char.zfill(np.arange(1, n + 1).astype(str), 7))
    tenant_frame = pd.DataFrame(
        {
            "external_id": pd.array(external_ids, dtype="str"),
            "name": pd.array(names, dtype="str"),
            "tier": pd.array(np.array(TIERS, dtype=object)[tier], dtype="str"),
            "region": pd.array(np.array(REGIONS, dtype=object)[region], dtype="str"),
            "seats": seats,
            "account_manager": pd.array(
                np.array([e for e, _ in ACCOUNT_MANAGERS] + [SELF_SERVE], dtype=object)[manager], dtype="str"
            ),
            "client_version": pd.array(versions, dtype="str"),
            "features": pd.array(feature_text[feature_bits], dtype="str"),
        }
    )
    order = np.argsort(events["at"], kind="stable")
    base = np.datetime64(start, "us")
    stages = ENCRYPTION_STAGES + E2EE_STAGES + (BLOCKED, ROLLED_BACK)
    event_frame = pd.DataFrame(
        {
            "tenant_id": pd.Categorical.from_codes(
                events["tenant"][order], categories=pd.Index(external_ids)
            ),
            "track": pd.Categorical.from_codes(events["track"][order], categories=list(TRACK_STAGES)),
            "stage": pd.Categorical.from_codes(events["stage"][order], categories=list(stages)),
            "occurred_at": base + (events["at"][order] * 1_000_000).astype("timedelta64[us]"),
            "source": pd.Categorical.from_codes(events["source"][order], categories=list(SOURCES)),
            "note": pd.Categorical.from_codes(events["note"][order], categories=notes.strings),
        }
    )
    return DemoData(tenants=tenant_frame, events=event_frame)


def _frame(rows: list[_Rows]) -> dict[str, np.ndarray]:
    """Flatten rows into parallel event arrays (tenant index, track, stage, seconds, source, note)."""
    stages = ENCRYPTION_STAGES + E2EE_STAGES + (BLOCKED, ROLLED_BACK)
    dtypes = {
        "tenant": np.int32,
        "track": np.int8,
        "stage": np.int8,
        "at": np.int64,
        "source": np.int8,
        "note": np.int32,
    }
    parts: dict[str, list[np.ndarray]] = {k: [] for k in dtypes}
    for r in rows:
        k = len(r.tenant)
        values = {"tenant": r.tenant, "track": r.track, "stage": stages.index(r.stage), "at": r.at}
        for key, value in {**values, "source": r.source, "note": r.note}.items():
            parts[key].append(np.broadcast_to(np.asarray(value, dtype=dtypes[key]), (k,)))
    return {
        key: np.concatenate(arrays) if arrays else np.array([], dtype=dtypes[key])
        for key, arrays in parts.items()
    }


def _merge(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([a[k], b[k]]) for k in a}


def demo_password() -> str:
    """The demo users' password: LOCKSTEP_DEMO_PASSWORD, or the documented demo-only default."""
    return os.environ.get("LOCKSTEP_DEMO_PASSWORD") or DEFAULT_DEMO_PASSWORD


def load_demo(
    *,
    engine: Engine,
    tenants: int,
    seed: int,
    actor: Actor,
    as_of: datetime | None = None,
    hostile_names: bool = False,
) -> dict:
    """Load generated tenants, events and demo users into an empty database with a synced plan.

    One transaction: the tenants, their events and the users land together or not at all.
    Returns {"tenants", "events", "users_added", "users_kept", "seed"}.
    """
    from lockstep.services import imports  # the import path is the one CSV uploads use

    require(actor, "demo.load")
    with write_session(engine) as session:
        program, blocking = _check_plan(session)
        existing = session.scalar(select(func.count()).select_from(Tenant))
        if existing:
            raise LockstepError(
                f"the database already has {existing} tenants; demo data loads only into an empty "
                "database (use a fresh database, or `python -m lockstep demo --if-empty`)"
            )
        closed = session.scalar(select(func.count()).select_from(SnapshotWeek))
        if closed:
            # Demo tenants are dated at the program's start: they would belong in weeks
            # already frozen without them, and change them silently.
            raise LockstepError(
                f"{closed} week(s) are already closed; demo data loads only before any week is closed "
                "(use a fresh database: `make run` loads the demo, then closes the weeks)"
            )
        data = generate_demo(
            tenants=tenants,
            seed=seed,
            program_start=program.start_date,
            program_end=program.end_date,
            as_of=as_of,
            e2ee_blocking=blocking,
            hostile_names=hostile_names,
        )
        added_tenants = imports.import_tenant_frame(
            session=session,
            frame=data.tenants,
            actor=actor,
            source_name="demo",
            created_at=datetime.combine(program.start_date, time()),
        )
        added_events = imports.import_event_frame(
            session=session, frame=data.events, actor=actor, source_name="demo"
        )
        added, kept = _add_demo_users(session, actor)
    return {
        "tenants": added_tenants.added,
        "events": added_events.added,
        "users_added": added,
        "users_kept": kept,
        "seed": seed,
    }


def _check_plan(session: Session) -> tuple[Program, tuple[str, ...]]:
    """The synced program and E2EE blocking features; LockstepError when the plan does not fit the demo."""
    hint = "run `python -m lockstep plan sync plan/90-day-plan.yaml` first"
    # The program whose tracks the demo writes events on (others may be synced beside it).
    owner = session.scalar(select(Track.program_id).where(Track.code == "encryption"))
    program = session.get(Program, owner) if owner else None
    rules = load_track_rules(session)
    missing = [code for code in TRACK_STAGES if code not in rules]
    if program is None or missing:
        raise LockstepError(
            f"the plan is not synced (no {'program' if program is None else 'track ' + missing[0]}); {hint}"
        )
    for code, stages in TRACK_STAGES.items():
        if rules[code].stages != stages or rules[code].tiers != frozenset(TRACK_TIERS[code]):
            raise LockstepError(
                f"track '{code}' in the database has stages {', '.join(rules[code].stages)} for tiers "
                f"{', '.join(sorted(rules[code].tiers))}; the demo writes stages {', '.join(stages)} "
                f"for tiers {', '.join(sorted(TRACK_TIERS[code]))}"
            )
    tiers = set(session.scalars(select(Tier.code)))
    if not set(TIERS) <= tiers:
        raise LockstepError(f"the plan has no tier {', '.join(sorted(set(TIERS) - tiers))}; {hint}")
    blocking = session.scalar(select(Track.blocking_features).where(Track.code == "e2ee")) or []
    return program, tuple(blocking)


def _add_demo_users(session: Session, actor: Actor) -> tuple[int, int]:
    """Create DEMO_USERS that do not exist yet; returns (added, kept)."""
    # They share one password, so one hash: argon2 is slow on purpose (~0.25 s each).
    password_hash = hash_password(demo_password())
    added = kept = 0
    for email, role, name in DEMO_USERS:
        if get_user(session=session, email=email) is not None:
            kept += 1
            continue
        add_user_with_hash(
            session=session,
            actor=actor,
            email=email,
            role=role,
            password_hash=password_hash,
            display_name=name,
        )
        added += 1
    return added, kept


__all__ = [
    "ACCOUNT_MANAGERS",
    "DEMO_USERS",
    "DemoData",
    "SELF_SERVE",
    "SPECIAL_NAMES",
    "HOSTILE_NAMES",
    "demo_password",
    "generate_demo",
    "load_demo",
]
