"""The browser's side of the session routes, for AppTest: where the app sends it, and what it gets back.

AppTest has no browser: `redirects` records the addresses the app sends the browser to
(lockstep.ui.session.send_browser_to), and `follow_sign_in` / `follow_sign_out` call the
routes of lockstep/ui/web.py with that address, check the response a browser would get,
and return the cookies it would keep.
"""

from __future__ import annotations

from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from starlette.requests import Request

from lockstep.ui.web import end_session_cookie, session_cookie_name, start_session_cookie


def redirects(monkeypatch) -> list[str]:
    """A list that collects every address the app sends the browser to from now on."""
    sent: list[str] = []
    monkeypatch.setattr("lockstep.ui.session.send_browser_to", sent.append)
    return sent


def get(endpoint, url: str, *, scheme: str = "http"):
    """Call a route endpoint with a GET of `url`, as the server would."""
    parts = urlsplit(url)
    scope = {
        "type": "http", "method": "GET", "scheme": scheme, "path": parts.path,
        "raw_path": parts.path.encode(), "query_string": parts.query.encode(), "headers": [],
        "server": ("127.0.0.1", 8501),
        "client": ("127.0.0.1", 50000), "root_path": "",
    }  # fmt: skip
    return endpoint(Request(scope))


def set_cookies(response) -> dict[str, SimpleCookie]:
    """The response's Set-Cookie headers, by cookie name."""
    found = {}
    for header in response.headers.getlist("set-cookie"):
        jar = SimpleCookie()
        jar.load(header)
        for name in jar:
            found[name] = jar
    return found


def follow_sign_in(url: str) -> str:
    """Load the START address; check the cookie is HttpOnly and SameSite=Lax; the session token it holds."""
    response = get(start_session_cookie, url)
    assert response.status_code == 303
    name = session_cookie_name()
    jar = set_cookies(response)[name]
    assert jar[name]["httponly"] and jar[name]["samesite"].lower() == "lax" and jar[name]["path"] == "/"
    return jar[name].value


def follow_sign_out(url: str) -> dict[str, str]:
    """Load the END address; check it drops the session cookie; the cookies the browser keeps."""
    response = get(end_session_cookie, url)
    assert response.status_code == 303
    jars = set_cookies(response)
    name = session_cookie_name()
    assert jars[name][name].value == "" and jars[name][name]["max-age"] == "0"
    return {n: jar[n].value for n, jar in jars.items() if n != name}
