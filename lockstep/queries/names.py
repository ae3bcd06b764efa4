"""The names behind codes and e-mails, for pages to show people instead of identifiers."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from lockstep.labels import Names
from lockstep.models import Tier, User


def display_names(*, session: Session) -> Names:
    """Tier names by code and people's names by e-mail (users without a name are left out)."""
    tiers = dict(session.execute(select(Tier.code, Tier.name)).all())
    people = {email: name for email, name in session.execute(select(User.email, User.display_name)) if name}
    return Names(tiers=tiers, people=people)
