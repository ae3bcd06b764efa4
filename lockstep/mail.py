"""Outgoing e-mail: a message built with the standard library, sent over SMTP from the settings.

The standard library's smtplib and email packages are enough: one message at a time to a
relay the organisation runs (LOCKSTEP_SMTP_HOST/PORT), STARTTLS when LOCKSTEP_SMTP_STARTTLS=1,
a login when LOCKSTEP_SMTP_USER is set. Nothing here writes to the database: recording a
delivery is lockstep.services.deliveries' job.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from lockstep.config import Settings
from lockstep.errors import LockstepError, ValidationError

SMTP_TIMEOUT = 30
# As loose as the user e-mail check (lockstep.services.users): one @, no spaces, a dot in the domain.
_ADDRESS = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s.,;<>]+$")


class DeliveryError(LockstepError):
    """The message could not be sent: no mail settings, or the server could not be reached or refused it."""


@dataclass(frozen=True)
class Attachment:
    """A file to attach: its name, bytes and MIME type."""

    filename: str
    content: bytes
    mime_type: str = "application/pdf"


def check_addresses(addresses: Sequence[str]) -> list[str]:
    """The addresses trimmed, lower-cased and without repeats; ValidationError names a bad one."""
    out: list[str] = []
    for raw in addresses:
        address = raw.strip().lower()
        if not _ADDRESS.match(address):
            raise ValidationError(
                f"{raw!r} is not an e-mail address (expected something like name@example.com)"
            )
        if address not in out:
            out.append(address)
    if not out:
        raise ValidationError("no recipient: give at least one e-mail address")
    return out


def check_mail_settings(settings: Settings) -> None:
    """DeliveryError naming what is missing unless a mail server and a sender are configured."""
    missing = [
        name
        for name, value in (
            ("LOCKSTEP_SMTP_HOST", settings.smtp_host),
            ("LOCKSTEP_SMTP_FROM", settings.smtp_from),
        )
        if not value
    ]
    if missing:
        raise DeliveryError(
            f"cannot send e-mail: set {' and '.join(missing)} (see README, Scheduled delivery)"
        )


def build_message(
    *,
    settings: Settings,
    recipients: Sequence[str],
    subject: str,
    body: str,
    attachments: Sequence[Attachment] = (),
) -> EmailMessage:
    """A plain-text message from the configured sender to `recipients`, with `attachments`."""
    check_mail_settings(settings)
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=settings.smtp_from.rpartition("@")[2] or None)
    msg.set_content(body)
    for a in attachments:
        maintype, _, subtype = a.mime_type.partition("/")
        msg.add_attachment(a.content, maintype=maintype, subtype=subtype, filename=a.filename)
    return msg


def send_message(message: EmailMessage, *, settings: Settings) -> list[str]:
    """Send through the configured server; return the recipients it refused (others got it).

    DeliveryError when it could not be sent to anyone: server unreachable, TLS or login
    failed, or every recipient refused.
    """
    check_mail_settings(settings)
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password)
            refused = smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(
            f"the mail server {where} refused every recipient: {', '.join(exc.recipients)}"
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"could not send through the mail server {where}: {exc}") from None
    return sorted(refused)
