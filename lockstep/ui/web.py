"""Two HTTP routes beside the Streamlit app: where the session cookie is set, and where it is cleared.

A Streamlit script talks to the browser over a websocket and cannot send a Set-Cookie
header, so the cookie is set the way Streamlit's own `st.login` sets its identity cookie:
the script sends the browser to a route (Streamlit's `auth_redirect` message, the one
`st.login` uses), and the route answers with Set-Cookie and a redirect back. The routes are
added through `st.App(routes=...)` in serve.py, Streamlit's own way to serve routes next
to an app. Being set by the server, the cookie is HttpOnly (no script on the page can read
it), SameSite=Lax, and Secure with the `__Host-` prefix when LOCKSTEP_PUBLIC_URL is https.

- START: trades the one-time hand-off code for the session token (lockstep/services/sessions.py),
  sets the cookie, and sends the browser on to the page it was signing in to.
- END: clears the cookie (the session itself was already ended by the sign-out service) and
  marks the browser as signed out, so the development auto sign-in does not undo it.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from streamlit import config as st_config
from streamlit.url_util import make_url_path

from lockstep.clock import utcnow
from lockstep.config import get_settings
from lockstep.db import get_engine, write_session
from lockstep.services.sessions import activate_session

# Present after an explicit sign-out until the browser closes; suppresses the development shortcut.
SIGNED_OUT_COOKIE = "lockstep_signed_out"
# Only a plain path of ours may follow sign-in: never another site, never a scheme or "//host".
_NEXT = re.compile(r"^/[A-Za-z0-9_\-/]*$")


def session_cookie_name() -> str:
    """The session cookie's name: `__Host-` prefixed (Secure, Path=/, this host only) under https."""
    return "__Host-lockstep_session" if get_settings().secure_cookies else "lockstep_session"


def _base() -> str:
    return st_config.get_option("server.baseUrlPath") or ""


def start_path() -> str:
    """Where the browser trades its hand-off code for the session cookie."""
    return make_url_path(_base(), "_lockstep/session/start")


def end_path() -> str:
    """Where the browser drops its session cookie after signing out."""
    return make_url_path(_base(), "_lockstep/session/end")


def home_path() -> str:
    """The app's root address."""
    return make_url_path(_base(), "") or "/"


def start_url(code: str, next_path: str) -> str:
    """The address that turns a hand-off code into this browser's session cookie."""
    return f"{start_path()}?{urlencode({'code': code, 'next': next_path})}"


def end_url(*, single_sign_on: bool) -> str:
    """The address that clears the session cookie (and then Streamlit's identity cookie, for SSO)."""
    return f"{end_path()}?sso=1" if single_sign_on else end_path()


def safe_next(value: str | None) -> str:
    """`value` when it is a plain path on this app, else the app's root."""
    if value and _NEXT.match(value) and not value.startswith("//"):
        return value
    return home_path()


def _no_store(response: Response) -> Response:
    # The code in the address must not leak into a Referer or a cache.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def start_session_cookie(request: Request) -> Response:
    """GET START?code=...&next=/page: set the session cookie for a fresh code, then go to the page."""
    settings = get_settings()
    if settings.secure_cookies and request.url.scheme != "https":
        # Otherwise the browser would drop the Secure cookie and sign-in would go round in circles.
        return _no_store(PlainTextResponse(
            "LOCKSTEP_PUBLIC_URL is https, but this request came over http: the browser would not keep the "
            "session cookie. Serve the app over https (a TLS proxy sending X-Forwarded-Proto) or fix "
            "LOCKSTEP_PUBLIC_URL.",
            status_code=400,
        ))
    with write_session(get_engine(settings.database_url)) as session:
        activated = activate_session(session=session, code=request.query_params.get("code", ""))
    response = _no_store(RedirectResponse(safe_next(request.query_params.get("next")), status_code=303))
    if activated is not None:
        response.set_cookie(
            session_cookie_name(),
            activated.token,
            max_age=max(0, int((activated.expires_at - utcnow()).total_seconds())),
            path="/",
            secure=settings.secure_cookies,
            httponly=True,
            samesite="lax",
        )
        response.delete_cookie(SIGNED_OUT_COOKIE, path="/")
    return response


def end_session_cookie(request: Request) -> Response:
    """GET END: clear the session cookie, note the sign-out, go home (or on to Streamlit's SSO logout)."""
    settings = get_settings()
    target = make_url_path(_base(), "auth/logout") if request.query_params.get("sso") else home_path()
    response = _no_store(RedirectResponse(target, status_code=303))
    response.delete_cookie(
        session_cookie_name(), path="/", secure=settings.secure_cookies, httponly=True, samesite="lax"
    )
    response.set_cookie(SIGNED_OUT_COOKIE, "1", path="/", secure=settings.secure_cookies, httponly=True,
                        samesite="lax")
    return response


def session_routes() -> list[Route]:
    """The routes serve.py hands to st.App."""
    return [
        Route(start_path(), start_session_cookie, methods=["GET"]),
        Route(end_path(), end_session_cookie, methods=["GET"]),
    ]
