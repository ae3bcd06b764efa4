"""Sending mail: settings from the environment, STARTTLS and login when asked, through a real SMTP server."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lockstep.config import Settings
from lockstep.errors import ValidationError
from lockstep.mail import Attachment, DeliveryError, build_message, check_addresses, send_message
from tests.smtp import smtp_server

SENDER = "lockstep@reports.example"


def test_smtp_settings_come_from_the_environment():
    s = Settings.from_env(
        {
            "LOCKSTEP_SMTP_HOST": "mail.example.com",
            "LOCKSTEP_SMTP_PORT": "587",
            "LOCKSTEP_SMTP_USER": "bot",
            "LOCKSTEP_SMTP_PASSWORD": "s3cret",
            "LOCKSTEP_SMTP_FROM": SENDER,
            "LOCKSTEP_SMTP_STARTTLS": "1",
        }
    )
    assert (s.smtp_host, s.smtp_port, s.smtp_user, s.smtp_password, s.smtp_from, s.smtp_starttls) == (
        "mail.example.com",
        587,
        "bot",
        "s3cret",
        SENDER,
        True,
    )
    assert Settings.from_env({}).smtp_starttls is False
    with pytest.raises(ValueError, match="LOCKSTEP_SMTP_PORT='smtp' is not a port number"):
        Settings.from_env({"LOCKSTEP_SMTP_PORT": "smtp"})
    with pytest.raises(ValueError, match="LOCKSTEP_SMTP_STARTTLS='maybe'"):
        Settings.from_env({"LOCKSTEP_SMTP_STARTTLS": "maybe"})


def test_addresses_are_checked_and_normalised():
    assert check_addresses([" A@Example.com", "b@example.org", "a@example.com"]) == [
        "a@example.com",
        "b@example.org",
    ]
    for bad in (["nobody"], ["a@b"], ["a@example.com, b@example.com"], []):
        with pytest.raises(ValidationError):
            check_addresses(bad)


def _message(settings: Settings, to: list[str]):
    return build_message(
        settings=settings,
        recipients=to,
        subject="Hello",
        body="Numbers inside.\n",
        attachments=[Attachment("r.pdf", b"%PDF-1.4 tiny")],
    )


def test_a_message_arrives_with_its_attachment():
    with smtp_server() as (inbox, port):
        settings = Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_from=SENDER)
        assert send_message(_message(settings, ["a@example.com"]), settings=settings) == []
    [got] = inbox.messages
    assert (got.mail_from, got.rcpt_tos, got.message["Subject"]) == (SENDER, ["a@example.com"], "Hello")
    [pdf] = got.message.iter_attachments()
    assert (pdf.get_filename(), pdf.get_content()) == ("r.pdf", b"%PDF-1.4 tiny")


@pytest.fixture
def tls_files(tmp_path, monkeypatch):
    """A self-signed certificate for localhost/127.0.0.1, trusted by this process (SSL_CERT_FILE)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    return cert_file, key_file


def test_starttls_and_login_when_asked(tls_files):
    cert_file, key_file = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    logins: list[tuple[str, str]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            b"bot",
            b"s3cret",
        )
        logins.append((mechanism, ok))
        return AuthResult(success=ok)

    with smtp_server(
        tls_context=context, require_starttls=True, auth_required=True, authenticator=authenticator
    ) as (inbox, port):
        asked = Settings(
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_from=SENDER,
            smtp_starttls=True,
            smtp_user="bot",
            smtp_password="s3cret",
        )
        assert send_message(_message(asked, ["a@example.com"]), settings=asked) == []
        # Not asked for STARTTLS: this server will not take the message in the clear.
        plain = Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_from=SENDER)
        with pytest.raises(DeliveryError, match=f"could not send through the mail server 127.0.0.1:{port}"):
            send_message(_message(plain, ["a@example.com"]), settings=plain)
    assert len(inbox.messages) == 1
    assert [ok for _, ok in logins] == [True]


def test_no_server_configured_or_reachable_is_a_delivery_error():
    with pytest.raises(DeliveryError, match="set LOCKSTEP_SMTP_HOST and LOCKSTEP_SMTP_FROM"):
        build_message(settings=Settings(), recipients=["a@example.com"], subject="x", body="y")
    from tests.smtp import free_port

    settings = Settings(smtp_host="127.0.0.1", smtp_port=free_port(), smtp_from=SENDER)
    with pytest.raises(DeliveryError, match="could not send"):
        send_message(_message(settings, ["a@example.com"]), settings=settings)
