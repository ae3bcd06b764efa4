"""The plan YAML as pydantic models: the shape of each entry, field by field.

Rules that need more than one entry (unknown references, duplicates, cycles, dates in
order) live in `lockstep.plan.loader`, which reports them with file and line.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from lockstep.models import PLAN_STATUSES, SIDE_STAGES

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CODE = re.compile(r"[a-z][a-z0-9_]*")
_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]*")
_ITEM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def parse_plan_date(value: object) -> object:
    """A date from a YAML value: a date, or text YYYY-MM-DD naming a real day."""
    # A datetime is a date subclass; a plan works in whole days, so refuse it plainly.
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a real date ({exc})") from None
    raise ValueError(
        f"{value!r} is not a date; write YYYY-MM-DD (a month like 2020-07 must be a day, e.g. 2020-07-31)"
    )


def _code(value: str) -> str:
    if not _CODE.fullmatch(value):
        raise ValueError(f"{value!r} is not a code: use a-z, 0-9 and _, starting with a letter")
    return value


def _slug(value: str) -> str:
    if not _SLUG.fullmatch(value):
        raise ValueError(f"{value!r} is not an id: use a-z, 0-9, '_' or '-'")
    return value


def _item_id(value: str) -> str:
    if not _ITEM_ID.fullmatch(value):
        raise ValueError(f"{value!r} is not an item id: use letters, digits, '.', '_' or '-'")
    return value


PlanDate = Annotated[date, BeforeValidator(parse_plan_date)]
Code = Annotated[str, Field(max_length=32), AfterValidator(_code)]
Slug = Annotated[str, Field(max_length=64), AfterValidator(_slug)]
LongCode = Annotated[str, Field(max_length=64), AfterValidator(_code)]
ItemId = Annotated[str, Field(max_length=32), AfterValidator(_item_id)]
Status = Literal[PLAN_STATUSES]  # type: ignore[valid-type]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProgramSpec(_Strict):
    """The program: its id, name and the window the plan covers."""

    id: Slug
    name: str = Field(min_length=1, max_length=200)
    start: PlanDate
    end: PlanDate


class TierSpec(_Strict):
    """A customer tier; the order in the file is the display order."""

    id: Code
    name: str = Field(min_length=1, max_length=100)
    paid: bool


class StageSpec(_Strict):
    """One ordered stage of a track."""

    id: Code
    name: str = Field(min_length=1, max_length=100)
    description: str = ""


class TrackSpec(_Strict):
    """A rollout: tiers covered, ordered stages, optional deadline and ready stage.

    Side stages (blocked, rolled_back) are not listed: the sync adds them to every track.
    """

    id: Code
    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    tiers: list[Code] = Field(min_length=1)
    stages: list[StageSpec] = Field(min_length=1)
    deadline: PlanDate | None = None
    ready_stage: Code | None = None
    blocking_features: list[LongCode] = Field(default_factory=list)
    # Feature code -> what it means in plain words; every blocking feature is described here.
    features: dict[LongCode, str] = Field(default_factory=dict)

    @property
    def stage_ids(self) -> list[str]:
        """Ordered stage ids, first to last."""
        return [s.id for s in self.stages]


class WorkstreamSpec(_Strict):
    """A group of plan items with a lead."""

    id: LongCode
    name: str = Field(min_length=1, max_length=200)
    lead: str = Field(default="", max_length=200)


class ItemSpec(_Strict):
    """A plan item: what was planned, plus status/percent/done applied only when it is created."""

    id: ItemId
    title: str = Field(min_length=1, max_length=300)
    workstream: LongCode
    owner: str = Field(min_length=1, max_length=200)
    start: PlanDate | None = None
    due: PlanDate | None = None
    depends_on: list[ItemId] = Field(default_factory=list)
    source: str = ""
    uncertain: bool = False
    # Why a date was chosen when the source gave none or only a month; kept with the source.
    note: str = ""
    status: Status | None = None
    percent: int | None = Field(default=None, ge=0, le=100)
    done: PlanDate | None = None

    @property
    def initial_status(self) -> str:
        """The status the item gets when the sync creates it."""
        return self.status or ("done" if self.done else "not_started")

    @property
    def initial_percent(self) -> int:
        """The percent the item gets when the sync creates it."""
        if self.percent is not None:
            return self.percent
        return 100 if self.initial_status == "done" else 0

    @property
    def source_text(self) -> str:
        """What the database keeps as the item's source: the source, then the note."""
        return f"{self.source}\nNote: {self.note}" if self.note else self.source


class Plan(_Strict):
    """A whole plan file."""

    program: ProgramSpec
    tiers: list[TierSpec]
    tracks: list[TrackSpec]
    workstreams: list[WorkstreamSpec]
    items: list[ItemSpec]

    def item(self, item_id: str) -> ItemSpec:
        """The item with this id; KeyError when there is none."""
        for it in self.items:
            if it.id == item_id:
                return it
        raise KeyError(item_id)


TOP_LEVEL_KEYS = tuple(Plan.model_fields)
SECTION_MODELS: dict[str, type[_Strict]] = {
    "program": ProgramSpec,
    "tiers": TierSpec,
    "tracks": TrackSpec,
    "workstreams": WorkstreamSpec,
    "items": ItemSpec,
}
RESERVED_STAGES = SIDE_STAGES
