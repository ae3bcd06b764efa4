from sqlalchemy import select

from lockstep.db import read_session, write_session
from lockstep.models import AuditEntry
from lockstep.permissions import SYSTEM
from lockstep.services import audit


def test_audit_chain_appends_and_verifies(engine):
    with write_session(engine) as s:
        audit.append(s, SYSTEM, "test.write", "thing", 1, before=None, after={"a": 1})
        audit.append(s, SYSTEM, "test.write", "thing", 1, before={"a": 1}, after={"a": 2})
    with read_session(engine) as s:
        assert [e.id for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))] == [1, 2]
        result = audit.verify(s)
    assert result.ok and result.checked == 2
