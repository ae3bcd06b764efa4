"""A real SMTP server for tests (aiosmtpd on 127.0.0.1), keeping what it receives to read back.

aiosmtpd (pinned in requirements-dev.txt) is the maintained asyncio SMTP server that replaced
the standard library's removed smtpd; it speaks STARTTLS and AUTH, so the real client path is tested.
"""

from __future__ import annotations

import email
import socket
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default

from aiosmtpd.controller import Controller


@dataclass
class Received:
    """One message as the server got it: envelope sender and recipients, and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps every message; `refuse` names recipients it turns away."""

    messages: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's name
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        parsed = email.message_from_bytes(envelope.original_content or envelope.content, policy=default)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def smtp_server(inbox: Inbox | None = None, *, hostname: str = "127.0.0.1", **kwargs):
    """Run an SMTP server on a free port for the block; yields (inbox, port)."""
    inbox = inbox or Inbox()
    controller = Controller(inbox, hostname=hostname, port=free_port(), **kwargs)
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()
