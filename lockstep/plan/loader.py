"""Load a plan YAML file and validate it, reporting every problem with file, line, entry and field.

Each entry (tier, track, workstream, item) is validated on its own, so one bad entry
does not hide the problems of the others; then the rules across entries run over the
entries that passed (unknown references, duplicate ids, dependency cycles).

Limits, checked before anything is built from the text (docs/security.md): a plan file is
at most MAX_PLAN_BYTES, and YAML aliases (`*name`) may add at most MAX_ALIAS_NODES nodes
to the document. Nested aliases multiply ("billion laughs": nine levels of ten grow a few
lines into a billion nodes), and walking the document for line numbers, or validating it,
would follow every copy. Characters YAML does not allow (NUL, ESC, ...) are reported with
their line, not as a parser traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import yaml
from pydantic import BaseModel

from lockstep.errors import ValidationError
from lockstep.plan.schema import (
    RESERVED_STAGES,
    SECTION_MODELS,
    TOP_LEVEL_KEYS,
    ItemSpec,
    Plan,
    ProgramSpec,
    TierSpec,
    TrackSpec,
    WorkstreamSpec,
)

Loc = tuple[str | int, ...]
LineOf = Callable[[Loc], int | None]
# The shipped plan is 15 KB and uses no alias; these leave room for a much larger one.
MAX_PLAN_BYTES = 1_000_000
MAX_ALIAS_NODES = 10_000
_KIND = {"tiers": "tier", "tracks": "track", "workstreams": "workstream", "items": "item"}
_LIST_SECTIONS = ("tiers", "tracks", "workstreams", "items")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a plan: where (file, line, entry, field) and why."""

    file: str
    line: int | None
    entity: str
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        what = f"{self.entity}, field {self.field!r}" if self.field else self.entity
        return f"{where}: {what}: {self.reason}"


class PlanInvalid(ValidationError):
    """The plan has problems; `problems` lists every one of them, in file order."""

    def __init__(self, file: str, problems: list[Problem]):
        self.file = file
        self.problems = problems
        lines = [f"{file}: {len(problems)} problem(s) in the plan"]
        lines += [f"  {p}" for p in problems]
        super().__init__("\n".join(lines))


class _PlanLoader(yaml.SafeLoader):
    """SafeLoader that keeps dates as text, so a bad date reaches validation with its item and line."""


# Stock PyYAML turns `due: 2020-13-45` into a bare ValueError with no line; leave dates to the schema.
_PlanLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file; raise PlanInvalid (a ValidationError) listing every problem."""
    file = str(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_PLAN_BYTES:
            problem = Problem(file, None, "plan", "", _too_large(size))
            raise PlanInvalid(file, [problem])
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        problem = Problem(file, None, "plan", "", f"cannot read the file: {reason}")
        raise PlanInvalid(file, [problem]) from None
    return parse_plan(text, file=file)


def parse_plan(text: str, *, file: str = "<plan>") -> Plan:
    """Validate plan YAML text; `file` is the name used in error messages."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_PLAN_BYTES:
        raise PlanInvalid(file, [Problem(file, None, "plan", "", _too_large(size))])
    try:
        data, lines, dupes = _parse_yaml(text)
    except _YamlSyntax as exc:
        raise PlanInvalid(file, [Problem(file, exc.line, "plan", "", exc.reason)]) from None
    locator = _Locator(file, data, lines)
    problems = [
        locator.problem(
            loc, f"duplicate key {loc[-1]!r} (first at line {first}); YAML keeps only the last", line=line
        )
        for loc, first, line in dupes
    ]
    plan, more = _validate(data, locator)
    problems += more
    if problems or plan is None:
        raise PlanInvalid(file, sorted(problems, key=lambda p: p.line or 0))
    return plan


def check_plan(plan: Plan, *, file: str = "<plan>") -> None:
    """Run the rules across entries on a Plan built in code; raise PlanInvalid on any problem."""
    locator = _Locator(file, plan.model_dump(mode="json"), {})
    found = _cross_check(
        plan.program,
        list(_indexed("tiers", plan.tiers)),
        list(_indexed("tracks", plan.tracks)),
        list(_indexed("workstreams", plan.workstreams)),
        list(_indexed("items", plan.items)),
        locator.line_of,
    )
    if found:
        raise PlanInvalid(file, [locator.problem(loc, reason) for loc, reason in found])


# --- YAML -------------------------------------------------------------------------------


class _YamlSyntax(Exception):
    def __init__(self, line: int | None, reason: str):
        super().__init__(reason)
        self.line, self.reason = line, reason


def _too_large(size: int) -> str:
    return (
        f"the file is {size:,} bytes; a plan file may be at most {MAX_PLAN_BYTES:,} bytes "
        "(split it, or check that this is the plan)"
    )


def _parse_yaml(text: str) -> tuple[Any, dict[Loc, int], list[tuple[Loc, int, int]]]:
    """Data, the line of every key and list entry, and duplicate keys (loc, first line, line)."""
    try:
        loader = _PlanLoader(text)
    except yaml.reader.ReaderError as exc:
        raise _unprintable(text, exc) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise _YamlSyntax(1, "the file is empty")
        _check_aliases(node)
        lines: dict[Loc, int] = {}
        dupes: list[tuple[Loc, int, int]] = []
        _index_lines(node, (), lines, dupes)
        data = loader.construct_document(node)
    except yaml.reader.ReaderError as exc:
        raise _unprintable(text, exc) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = f"YAML syntax error: {exc.problem or exc.context}"
        if exc.context and exc.problem:
            reason += f" ({exc.context})"
        if mark is not None:
            reason += f", column {mark.column + 1}"
        raise _YamlSyntax(mark.line + 1 if mark else None, reason) from None
    except yaml.YAMLError as exc:
        raise _YamlSyntax(None, f"YAML syntax error: {exc}") from None
    finally:
        loader.dispose()
    return data, lines, dupes


_CONTROL_NAMES = {0: "NUL", 0x1B: "ESC", 0x7F: "DEL", 0x08: "backspace", 0x0C: "form feed"}


def _unprintable(text: str, exc: yaml.reader.ReaderError) -> _YamlSyntax:
    """A character YAML refuses, with its line and column (the reader reports a bare offset)."""
    line = text.count("\n", 0, exc.position) + 1
    column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
    name = _CONTROL_NAMES.get(code, "a control character")
    return _YamlSyntax(
        line,
        f"character U+{code:04X} ({name}) at column {column} is not allowed in YAML; "
        "remove it (a control character often comes from a copy and paste or a binary file)",
    )


def _check_aliases(root: yaml.Node) -> None:
    """Refuse aliases that add more than MAX_ALIAS_NODES nodes, or that contain themselves.

    PyYAML's composer makes an alias the very node its anchor names, so the document is a
    graph; its size as a tree (every alias written out) is counted once per node, bottom up.
    """
    distinct: set[int] = set()
    sizes: dict[int, int] = {}
    # Iterative post-order walk: a deep document must not hit Python's recursion limit.
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            open_.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] - len(distinct) > MAX_ALIAS_NODES:
                _too_many_aliases(node)
            continue
        if key in sizes:
            continue
        if key in open_:
            raise _YamlSyntax(
                node.start_mark.line + 1,
                "an alias refers to the entry that contains it (a loop); write the entry out instead",
            )
        open_.add(key)
        distinct.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in open_:
                raise _YamlSyntax(
                    child.start_mark.line + 1,
                    "an alias refers to the entry that contains it (a loop); write the entry out instead",
                )
            if id(child) not in sizes:
                stack.append((child, False))
    if sizes[id(root)] - len(distinct) > MAX_ALIAS_NODES:
        _too_many_aliases(root)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _too_many_aliases(node: yaml.Node) -> None:
    raise _YamlSyntax(
        node.start_mark.line + 1,
        f"YAML aliases (*name) here expand the document by more than {MAX_ALIAS_NODES:,} entries "
        "(nested aliases multiply); write the entries out instead",
    )


def _index_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int], dupes: list[tuple[Loc, int, int]]) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                dupes.append((loc + (key,), seen[key], line))
                continue
            seen[key] = line
            lines[loc + (key,)] = line
            _index_lines(value_node, loc + (key,), lines, dupes)
    elif isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            _index_lines(child, loc + (i,), lines, dupes)


# --- Where a problem is -----------------------------------------------------------------


class _Locator:
    """Turns a location in the data into file, line, entry ("item Z13") and field ("due")."""

    def __init__(self, file: str, data: Any, lines: dict[Loc, int]):
        self.file, self.data, self.lines = file, data, lines

    def line_of(self, loc: Loc) -> int | None:
        """The line of `loc`, or of its nearest enclosing key or entry."""
        for n in range(len(loc), -1, -1):
            if loc[:n] in self.lines:
                return self.lines[loc[:n]]
        return None

    def problem(self, loc: Loc, reason: str, *, line: int | None = None) -> Problem:
        """A Problem at `loc`."""
        entity, field = self._describe(loc)
        return Problem(self.file, line or self.line_of(loc), entity, field, reason)

    def _entry(self, section: str, index: int) -> Any:
        try:
            return self.data[section][index]
        except (KeyError, IndexError, TypeError):
            return None

    def _describe(self, loc: Loc) -> tuple[str, str]:
        if not loc:
            return "plan", ""
        section, rest = loc[0], loc[1:]
        if section == "program" and rest:
            return "program", _dotted(rest)
        if section not in _LIST_SECTIONS or not rest or not isinstance(rest[0], int):
            return "plan", _dotted(loc)
        index, rest = rest[0], rest[1:]
        entity = _named(_KIND[section], self._entry(section, index), index)
        if section == "tracks" and len(rest) >= 2 and rest[0] == "stages" and isinstance(rest[1], int):
            track = self._entry(section, index)
            stages = track.get("stages") if isinstance(track, dict) else None
            stage = stages[rest[1]] if isinstance(stages, list) and rest[1] < len(stages) else None
            entity += ", " + _named("stage", stage, rest[1])
            rest = rest[2:]
        return entity, _dotted(rest)


def _named(kind: str, entry: Any, index: int) -> str:
    ident = entry.get("id") if isinstance(entry, dict) else None
    return f"{kind} {ident}" if isinstance(ident, str) and ident else f"{kind} #{index + 1} (no id)"


def _dotted(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# --- Validation -------------------------------------------------------------------------


def _validate(data: Any, locator: _Locator) -> tuple[Plan | None, list[Problem]]:
    problems: list[Problem] = []
    if not isinstance(data, dict):
        shape = ", ".join(TOP_LEVEL_KEYS)
        return None, [locator.problem((), f"the file must be a mapping with the keys {shape}")]
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            problems.append(locator.problem((str(key),), _unknown_key(str(key), TOP_LEVEL_KEYS)))
    for key in TOP_LEVEL_KEYS:
        if key not in data:
            problems.append(locator.problem((key,), "required but missing"))

    program: ProgramSpec | None = None
    if "program" in data:
        program = _entry_model(ProgramSpec, data["program"], ("program",), locator, problems)
    sections: dict[str, list[tuple[Loc, Any]]] = {}
    for name in _LIST_SECTIONS:
        sections[name] = []
        raw = data.get(name)
        if name not in data:
            continue
        if not isinstance(raw, list):
            problems.append(locator.problem((name,), f"must be a list of {_KIND[name]} entries"))
            continue
        for i, entry in enumerate(raw):
            model = _entry_model(SECTION_MODELS[name], entry, (name, i), locator, problems)
            if model is not None:
                sections[name].append(((name, i), model))

    # Ids of entries that failed validation still count as defined, so one bad item does not
    # also show up as "missing" in every item that depends on it.
    known = {name: {e["id"] for e in data[name] if isinstance(e, dict) and isinstance(e.get("id"), str)}
             for name in _LIST_SECTIONS if isinstance(data.get(name), list)}
    found = _cross_check(program, sections["tiers"], sections["tracks"], sections["workstreams"],
                         sections["items"], locator.line_of, known=known)
    problems += [locator.problem(loc, reason) for loc, reason in found]
    if problems or program is None:
        return None, problems
    plan = Plan(program=program, **{name: [m for _, m in sections[name]] for name in _LIST_SECTIONS})
    return plan, problems


def _entry_model(model: type[BaseModel], raw: Any, loc: Loc, locator: _Locator,
                 problems: list[Problem]) -> Any:
    if not isinstance(raw, dict):
        keys = ", ".join(model.model_fields)
        problems.append(locator.problem(loc, f"must be a mapping of key: value (keys: {keys})"))
        return None
    try:
        return model.model_validate(raw)
    except pydantic.ValidationError as exc:
        for err in exc.errors():
            sub, reason = _translate(err, model)
            problems.append(locator.problem(loc + sub, reason))
        return None


def _translate(err: Any, model: type[BaseModel]) -> tuple[Loc, str]:
    """A pydantic error as (location, reason a person can act on)."""
    # Dict-key errors carry a "[key]" marker; the key itself is already in the location.
    loc = tuple(p for p in err["loc"] if p != "[key]")
    kind, msg, value = err["type"], err["msg"], err.get("input")
    if kind == "extra_forbidden":
        return loc, _unknown_key(str(loc[-1]), _fields_at(model, loc[:-1]))
    if kind == "missing":
        return loc, "required but missing"
    if kind in ("value_error", "assertion_error"):
        return loc, msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return loc, f"{msg[:1].lower()}{msg[1:]} (got {shown})"


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys allowed at `loc` inside `model` (e.g. a stage's keys inside a track)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        annotation = current.model_fields[part].annotation
        current = next((a for a in getattr(annotation, "__args__", ()) if isinstance(a, type)
                        and issubclass(a, BaseModel)), annotation)
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _unknown_key(key: str, allowed: Iterable[str]) -> str:
    allowed = list(allowed)
    reason = f"unknown key {key!r}"
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        reason += f"; did you mean {close[0]!r}?"
    return reason + f" (allowed keys: {', '.join(allowed)})"


def _indexed(section: str, models: Iterable[Any]) -> Iterable[tuple[Loc, Any]]:
    for i, model in enumerate(models):
        yield (section, i), model


def _unique_ids(entries: list[tuple[Loc, Any]], kind: str, line_of: LineOf,
                found: list[tuple[Loc, str]], *, attr: str = "id") -> dict[str, Any]:
    """First entry per id; every later entry with the same id is reported."""
    first: dict[str, tuple[Loc, Any]] = {}
    for loc, model in entries:
        ident = getattr(model, attr)
        if ident in first:
            at = line_of(first[ident][0])
            where = f"line {at}" if at else f"{kind} #{first[ident][0][-1] + 1}"
            found.append((loc + ("id",), f"duplicate id {ident!r}: another {kind} already uses it ({where})"))
        else:
            first[ident] = (loc, model)
    return {ident: model for ident, (_, model) in first.items()}


def _cross_check(
    program: ProgramSpec | None,
    tiers: list[tuple[Loc, TierSpec]],
    tracks: list[tuple[Loc, TrackSpec]],
    workstreams: list[tuple[Loc, WorkstreamSpec]],
    items: list[tuple[Loc, ItemSpec]],
    line_of: LineOf,
    *,
    known: dict[str, set[str]] | None = None,
) -> list[tuple[Loc, str]]:
    """Rules across entries: references, duplicates, cycles and date order, as (location, reason).

    `known` adds ids that exist in the file but whose entries failed validation.
    """
    found: list[tuple[Loc, str]] = []
    known = known or {}
    if program is not None and program.end < program.start:
        found.append((("program", "end"), f"end {program.end} is before start {program.start}"))

    tier_ids = _unique_ids(tiers, "tier", line_of, found)
    _unique_ids(tracks, "track", line_of, found)
    workstream_ids = _unique_ids(workstreams, "workstream", line_of, found)
    item_ids = _unique_ids(items, "item", line_of, found)

    for loc, track in tracks:
        for tier in track.tiers:
            if tier not in tier_ids and tier not in known.get("tiers", ()):
                found.append((loc + ("tiers",), f"unknown tier {tier!r} (tiers: {', '.join(tier_ids)})"))
        _unique_ids([(loc + ("stages", j), s) for j, s in enumerate(track.stages)], "stage", line_of, found)
        for j, stage in enumerate(track.stages):
            if stage.id in RESERVED_STAGES:
                found.append((loc + ("stages", j, "id"),
                              f"{stage.id!r} is a side stage: the sync adds {' and '.join(RESERVED_STAGES)} "
                              "to every track, so do not list it among the ordered stages"))
        if track.ready_stage is not None and track.ready_stage not in track.stage_ids:
            found.append((loc + ("ready_stage",), f"unknown stage {track.ready_stage!r}: not one of this "
                          f"track's stages ({', '.join(track.stage_ids)})"))
        for feature in _repeated(track.blocking_features):
            found.append((loc + ("blocking_features",), f"{feature!r} is listed twice"))
        for feature in dict.fromkeys(track.blocking_features):
            if feature not in track.features:
                found.append((loc + ("blocking_features",), f"blocking feature {feature!r} is not described "
                              "under features (add `features: {" + feature + ": <plain words>}`)"))

    for loc, item in items:
        if item.workstream not in workstream_ids and item.workstream not in known.get("workstreams", ()):
            found.append((loc + ("workstream",), f"unknown workstream {item.workstream!r} "
                          f"(workstreams: {', '.join(workstream_ids)})"))
        for dep in _repeated(item.depends_on):
            found.append((loc + ("depends_on",), f"{dep!r} is listed twice"))
        for dep in dict.fromkeys(item.depends_on):
            if dep not in item_ids and dep not in known.get("items", ()):
                found.append((loc + ("depends_on",), f"depends on {dep!r}, which is not an item in the plan"))
        if item.start and item.due and item.due < item.start:
            found.append((loc + ("due",), f"due {item.due} is before start {item.start}"))
        if item.start and item.done and item.done < item.start:
            found.append((loc + ("done",), f"done {item.done} is before start {item.start}"))
        if item.status == "done" and item.done is None:
            found.append((loc + ("status",), "status 'done' needs a done date (add done: YYYY-MM-DD)"))
        if item.done is not None and item.status not in (None, "done"):
            found.append((loc + ("done",), f"a done date needs status 'done', but status is {item.status!r}"))
        if item.initial_status == "done" and item.percent not in (None, 100):
            found.append((loc + ("percent",), f"a done item is 100 percent, not {item.percent}"))

    first_loc = {item.id: loc for loc, item in reversed(items)}
    for cycle in _cycles({i: m.depends_on for i, m in item_ids.items()}):
        found.append((first_loc[cycle[0]] + ("depends_on",),
                      f"dependency cycle: {' -> '.join(cycle + [cycle[0]])} (each depends on the next)"))
    return found


def _repeated(values: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for v in values:
        if v in seen and v not in out:
            out.append(v)
        seen.add(v)
    return out


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Cycles found by a depth-first walk, each once, each starting at its earliest node in `graph`."""
    order = {node: n for n, node in enumerate(graph)}
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    seen: set[tuple[str, ...]] = set()
    cycles: list[list[str]] = []
    for root in graph:
        if root in state:
            continue
        path: list[str] = [root]
        stack = [iter(graph[root])]
        state[root] = 1
        # Iterative, so a long chain of dependencies cannot hit Python's recursion limit.
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):]
                start = min(range(len(cycle)), key=lambda k: order[cycle[k]])
                cycle = cycle[start:] + cycle[:start]
                if tuple(cycle) not in seen:
                    seen.add(tuple(cycle))
                    cycles.append(cycle)
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(graph[nxt]))
    return cycles
