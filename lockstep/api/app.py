"""The HTTP API, version 1: health, rollout events in, one tenant's customer status out.

Thin like the pages: it authenticates a bearer token, reads the body within the size
limits, and hands over to the services and queries the app and the command line use
(services.ingest -> services.imports for events, queries.customers for a status). Every
answer is JSON; no error ever carries a stack trace (the server log has it).

Answers of POST /api/v1/events:
  201 events added / 200 nothing new (repeats) — {"rows", "added", "skipped"}
  400 bad JSON or bad rows — {"error", "total_errors", "errors": [{row, field, value, reason}]}
  401 no, unknown or revoked token; 403 a role without import.run;
  413 over MAX_BODY_BYTES or MAX_EVENTS; 422 an Idempotency-Key reused for another body;
  503 the database is down or not migrated.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at run time,
# and they name `holder`, a function local to create_app.

import hashlib
import json
import logging
import re
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from lockstep.access import may_open
from lockstep.db import get_engine, read_session, write_session
from lockstep.errors import ImportRejected, NotFoundError, PermissionDenied, ValidationError
from lockstep.migrate import database_revision, head_revision
from lockstep.permissions import require
from lockstep.queries.customers import CustomerStatus, customer_status
from lockstep.services.api_tokens import TokenHolder, token_actor
from lockstep.services.ingest import IngestAnswer, ingest_events

log = logging.getLogger("lockstep.api")

PREFIX = "/api/v1"
# A request is read into memory whole (all or nothing needs every row before writing), so
# both its bytes and its rows are capped; bigger loads go through the CSV import.
MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_EVENTS = 10_000
_KEY_SHAPE = re.compile(r"[\x21-\x7e]{1,255}")


# --- what the OpenAPI page shows ------------------------------------------------------------


class EventIn(BaseModel):
    """One rollout event: the columns of the events CSV (docs/csv-formats.md), as JSON strings."""

    model_config = ConfigDict(extra="forbid")
    tenant_id: str = Field(description="the tenant's external id", examples=["T0000042"])
    track: str = Field(description="a track code of the synced plan", examples=["encryption"])
    stage: str = Field(description="a stage of that track", examples=["gcm_enabled"])
    occurred_at: str = Field(
        description="ISO 8601 date or time; UTC unless it carries an offset",
        examples=["2020-05-01T14:30:00Z"],
    )
    source: str = Field("", description="where the event comes from (default 'api'), at most 64 characters")
    note: str = Field("", description="free text")


class Counts(BaseModel):
    """What an accepted request did."""

    rows: int = Field(description="events in the request")
    added: int = Field(description="events written")
    skipped: int = Field(description="events already stored (a repeat adds nothing)")


class RowProblem(BaseModel):
    """One bad value: the event's position in the list (from 1), its field, the value and why."""

    row: int
    field: str
    value: str
    reason: str


class Problem(BaseModel):
    """Any refusal: what went wrong; for bad rows also each bad value (the first 50) and how many in all."""

    error: str
    total_errors: int = 0
    errors: list[RowProblem] = []


class Health(BaseModel):
    """Whether the API can serve: the database answers and is migrated to the code's revision."""

    status: str
    database_revision: str | None = None
    expected_revision: str | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": text}
    for code, text in (
        (400, "the body is not a JSON list of events, or some events break the rules (nothing written)"),
        (401, "no token, or an unknown or revoked one"),
        (403, "the token's role may not do this"),
        (413, f"more than {MAX_BODY_BYTES // (1024 * 1024)} MiB or {MAX_EVENTS:,} events"),
        (422, "an Idempotency-Key used before with a different body"),
        (503, "the database is unreachable or not migrated"),
    )
}


class ApiError(Exception):
    """An answer other than success, with its status and message."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def _problem(status: int, message: str, errors: list[dict] | None = None, total: int = 0, headers=None):
    body = {"error": message, "total_errors": total, "errors": errors or []}
    return JSONResponse(body, status_code=status, headers=headers)


# --- the app --------------------------------------------------------------------------------


def create_app(engine: Engine | None = None) -> FastAPI:
    """The API over `engine` (default: the configured database)."""
    app = FastAPI(
        title="Lockstep API",
        version="1",
        description="Rollout events in, a tenant's status out. Send `Authorization: Bearer TOKEN` "
        "(make one with `python -m lockstep token add`).",
        docs_url=f"{PREFIX}/docs",
        openapi_url=f"{PREFIX}/openapi.json",
        redoc_url=None,
    )
    app.state.engine = engine
    expected = head_revision()  # read from the migration files once, not per health check
    _install_error_handlers(app)
    bearer = HTTPBearer(auto_error=False, description="an API token from `python -m lockstep token add`")

    def the_engine() -> Engine:
        return app.state.engine or get_engine()

    def holder(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> TokenHolder:
        """The token's holder; 401 without a live token."""
        if credentials is None:
            raise ApiError(401, "send Authorization: Bearer TOKEN", headers={"WWW-Authenticate": "Bearer"})
        with read_session(the_engine()) as session:
            found = token_actor(session=session, token=credentials.credentials)
        if found is None:
            raise ApiError(
                401,
                "the token is not valid: unknown, revoked, or its account manager is no longer active",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return found

    @app.get(f"{PREFIX}/health", response_model=Health, responses={503: {"model": Health}}, tags=["health"])
    def health() -> JSONResponse:
        """200 when the database answers and is migrated to this code's revision; 503 otherwise."""
        try:
            with the_engine().connect() as conn:
                current = database_revision(conn)
        except DBAPIError as exc:
            log.warning("health: database unreachable: %s", exc)
            return JSONResponse({"status": "database unreachable", "expected_revision": expected}, 503)
        ok = current == expected
        body = {
            "status": "ok" if ok else "database not migrated: run `python -m lockstep db upgrade`",
            "database_revision": current,
            "expected_revision": expected,
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.post(
        f"{PREFIX}/events",
        status_code=201,
        response_model=Counts,
        responses={
            200: {"model": Counts, "description": "nothing new: every event was stored already"},
            **ERRORS,
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "array",
                            "maxItems": MAX_EVENTS,
                            "items": EventIn.model_json_schema(),
                        }
                    }
                },
            }
        },
        tags=["events"],
    )
    async def post_events(request: Request, who: Annotated[TokenHolder, Depends(holder)]) -> JSONResponse:
        """Record rollout events, all or nothing, by the events CSV's rules (docs/csv-formats.md).

        With an `Idempotency-Key` header (up to 255 visible ASCII characters), a retry of the
        same request within 24 hours gets the first answer back and writes nothing.
        """
        try:
            require(who.actor, "import.run")
        except PermissionDenied as exc:
            raise ApiError(403, str(exc)) from None
        key = request.headers.get("idempotency-key")
        if key is not None and not _KEY_SHAPE.fullmatch(key):
            raise ApiError(400, "Idempotency-Key: 1 to 255 visible ASCII characters, no spaces")
        body = await _read_body(request)
        rows = _parse_events(body)
        answer = await run_in_threadpool(
            _ingest, the_engine(), who, rows, key, hashlib.sha256(body).hexdigest()
        )
        headers = {"Idempotency-Replayed": "true"} if answer.replayed else None
        return JSONResponse(answer.body, status_code=answer.status, headers=headers)

    @app.get(
        f"{PREFIX}/tenants/{{external_id}}/status",
        response_model=CustomerStatus,
        responses={
            404: {"model": Problem, "description": "no such tenant among those the token may see"},
            **{k: ERRORS[k] for k in (401, 403, 503)},
        },
        tags=["tenants"],
    )
    def get_status(external_id: str, who: Annotated[TokenHolder, Depends(holder)]) -> CustomerStatus:
        """One tenant as its customer sees it (the Customers page and share links show the same).

        Like the Customers page: admins see any tenant, an account manager's token its own
        manager's tenants only (another tenant is 404, as one that does not exist); other roles 403.
        """
        if not may_open(who.actor.role, "customers"):
            raise ApiError(
                403,
                f"a {who.actor.role} token may not read customer status (admins and account "
                "managers may, as on the Customers page)",
            )
        # Scoped to the actor as the pages' reads are (on PostgreSQL, row-level security too).
        with read_session(the_engine(), actor=who.actor) as session:
            return customer_status(session=session, actor=who.actor, tenant_external_id=external_id)

    return app


async def _read_body(request: Request) -> bytes:
    """The body, refused with 413 as soon as it passes MAX_BODY_BYTES (before all of it is read)."""
    too_big = ApiError(
        413, f"the body is larger than {MAX_BODY_BYTES:,} bytes; send fewer events per request"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_big
    return bytes(body)


def _parse_events(body: bytes) -> list[Any]:
    """The JSON list of events; 400 for anything else, 413 for more than MAX_EVENTS."""
    try:
        # JSON is UTF-8 (RFC 8259); json.loads would guess UTF-16/32 from the bytes instead.
        rows = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            400, f"the body is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    if not isinstance(rows, list):
        raise ApiError(400, f"the body must be a JSON list of events, not a JSON {type(rows).__name__}")
    if len(rows) > MAX_EVENTS:
        raise ApiError(
            413, f"{len(rows):,} events in one request; at most {MAX_EVENTS:,}, send the rest after"
        )
    return rows


def _ingest(engine: Engine, who: TokenHolder, rows: list[Any], key: str | None, digest: str) -> IngestAnswer:
    """The write, retried once when a concurrent request with the same key committed first."""
    for attempt in (1, 2):
        try:
            with write_session(engine) as session:
                return ingest_events(
                    session=session, holder=who, rows=rows, idempotency_key=key, request_sha256=digest
                )
        except IntegrityError:
            # Two requests with one key at once: the loser's key row collides; the retry reads
            # the winner's answer. Any other collision is a fault, reported as one.
            if key is None or attempt == 2:
                raise
    raise AssertionError("unreachable")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request, exc: ApiError):
        return _problem(exc.status, exc.message, headers=exc.headers)

    @app.exception_handler(ImportRejected)
    async def _rejected(_request, exc: ImportRejected):
        errors = [{"row": e.row, "field": e.column, "value": e.value, "reason": e.reason} for e in exc.errors]
        return _problem(
            400, f"{exc.total_errors} bad value(s); nothing was recorded", errors[: exc.cap], exc.total_errors
        )

    @app.exception_handler(ValidationError)
    async def _invalid(_request, exc: ValidationError):
        # IdempotencyKeyReused is the only ValidationError an endpoint lets through.
        return _problem(422, str(exc))

    @app.exception_handler(PermissionDenied)
    async def _denied(_request, exc: PermissionDenied):
        return _problem(403, str(exc))

    @app.exception_handler(NotFoundError)
    async def _not_found(_request, exc: NotFoundError):
        return _problem(404, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request, exc: RequestValidationError):
        return _problem(400, "; ".join(str(e.get("msg", e)) for e in exc.errors()) or "bad request")

    @app.exception_handler(DBAPIError)
    async def _database(_request, exc: DBAPIError):
        if isinstance(exc, IntegrityError) or not _unavailable(exc):
            log.exception("database error", exc_info=exc)
            return _problem(500, "internal error; the server log has the details")
        log.warning("database unavailable: %s", exc.orig)
        return _problem(503, "the database is unavailable; try again later")

    @app.exception_handler(Exception)
    async def _anything(_request, exc: Exception):
        log.exception("unexpected error", exc_info=exc)
        return _problem(500, "internal error; the server log has the details")


def _unavailable(exc: DBAPIError) -> bool:
    """True for 'cannot reach or use the database right now' (as opposed to a fault in a statement)."""
    from sqlalchemy.exc import OperationalError

    if exc.connection_invalidated or isinstance(exc, OperationalError):
        return True
    # A table missing: the database is not migrated (psycopg: UndefinedTable; SQLite: OperationalError).
    return type(exc.orig).__name__ in ("UndefinedTable", "InvalidCatalogName")
