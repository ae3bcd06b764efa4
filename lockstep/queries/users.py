"""Reading the users table for the Users page (admins only)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lockstep.clock import utcnow
from lockstep.models import User, UserSession
from lockstep.permissions import Actor, require

USER_COLUMNS = [
    "email", "name", "role", "active", "last_sign_in", "locked_until", "failed_sign_ins", "open_sessions",
]


def users_overview(*, session: Session, actor: Actor) -> pd.DataFrame:
    """Every user, by e-mail: columns USER_COLUMNS (locked_until only while it is in the future)."""
    require(actor, "user.manage")
    now = utcnow()
    open_sessions = (
        select(UserSession.user_id, func.count().label("n"))
        .where(UserSession.ended_at.is_(None), UserSession.activated_at.is_not(None),
               UserSession.expires_at > now)
        .group_by(UserSession.user_id)
        .subquery()
    )
    rows = session.execute(
        select(
            User.email, User.display_name, User.role, User.is_active, User.last_login_at, User.locked_until,
            User.failed_logins, func.coalesce(open_sessions.c.n, 0),
        )
        .outerjoin(open_sessions, open_sessions.c.user_id == User.id)
        .order_by(User.email)
    ).all()
    frame = pd.DataFrame(rows, columns=USER_COLUMNS)
    frame["locked_until"] = [
        until if until is not None and until > now else None for until in frame["locked_until"]
    ]
    frame["active"] = frame["active"].astype(bool)
    return frame
