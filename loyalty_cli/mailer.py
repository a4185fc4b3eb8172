"""Sending mail through the shop's own SMTP server: the standard library's
smtplib over STARTTLS (never credentials or mail in clear text, but to a relay
on this machine), a login from the environment or a netrc-style file (never the
command line, where `ps` and the shell's history show it), and one message at a
time, so a refused recipient is reported and the others still go.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from .errors import BadArgument, InputMissing, LoyaltyError, Refused

DEFAULT_PORT = 587  # message submission, with STARTTLS
LOCAL = ("localhost", "127.0.0.1", "::1")


class Unavailable(LoyaltyError):
    """The mail server could not be reached, or went away: nothing more was sent;
    what was sent is recorded, so running the same command later sends the rest."""

    exit_code = 75
    code = "smtp_unavailable"


@dataclass(frozen=True)
class Server:
    host: str
    port: int = DEFAULT_PORT
    starttls: bool = True
    user: str | None = None
    password: str | None = None
    cafile: Path | None = None  # a private CA the shop's server certificate is signed by
    timeout: float = 30.0


def parse_address(text: str) -> tuple[str, int]:
    """`mail.example.com`, `mail.example.com:2525`, `[::1]:2525`."""
    raw = text.strip()
    host, port = raw, DEFAULT_PORT
    if raw.startswith("["):
        host, _, rest = raw[1:].partition("]")
        if rest.startswith(":"):
            port = _port(rest[1:], text)
    elif raw.count(":") == 1:
        host, _, number = raw.partition(":")
        port = _port(number, text)
    if not host or any(c.isspace() for c in host):
        raise BadArgument(f"--smtp {text[:60]!r} is not HOST or HOST:PORT", field="--smtp")
    return host, port


def _port(number: str, text: str) -> int:
    if not number.isdigit() or not 1 <= int(number) <= 65535:
        raise BadArgument(f"--smtp {text[:60]!r}: the port must be 1 to 65535", field="--smtp")
    return int(number)


def credentials(host: str, netrc_file: Path | None) -> tuple[str, str] | None:
    """The login for `host` in a netrc-style file (`machine HOST login USER password
    PASS`), or None when the file has none for it."""
    if netrc_file is None:
        return None
    import netrc

    try:
        found = netrc.netrc(str(netrc_file)).authenticators(host)
    except FileNotFoundError:
        raise InputMissing(
            f"netrc file {netrc_file} does not exist", field="--smtp-netrc"
        ) from None
    except netrc.NetrcParseError as exc:
        raise BadArgument(f"{exc.filename}:{exc.lineno}: {exc.msg}", field="--smtp-netrc") from None
    except OSError as exc:
        raise InputMissing(f"netrc file {netrc_file} cannot be read: {exc.strerror}") from None
    if found is None:
        return None
    login, _, password = found
    return (login, password) if login and password else None


@dataclass(frozen=True)
class Outcome:
    sent: bool
    reply: int | None = None  # a refusal's SMTP code
    words: str = ""  # what the server said, for the report (not stored)


class Connection:
    def __init__(self, smtp: smtplib.SMTP) -> None:
        self.smtp = smtp

    def send(self, message: EmailMessage) -> Outcome:
        """One message. A refused recipient or message is an outcome, not an error;
        a server that went away is `Unavailable`."""
        try:
            self.smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, words = next(iter(exc.recipients.values()))
            return Outcome(False, int(code), _said(words))
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            if exc.smtp_code >= 500 or exc.smtp_code < 400:
                return Outcome(False, exc.smtp_code, _said(exc.smtp_error))
            raise Unavailable(
                f"the mail server deferred a message ({exc.smtp_code} {_said(exc.smtp_error)}); "
                "what was sent is recorded: run the same command again later"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise Unavailable(
                f"the mail server went away ({exc}); what was sent is recorded: run the same "
                "command again later to send the rest"
            ) from None
        return Outcome(True)


def _said(words: bytes | str) -> str:
    text = words.decode("utf-8", "replace") if isinstance(words, bytes) else str(words)
    return " ".join(text.split())[:200]


def check(server: Server) -> None:
    """Refused before anything is read or sent: clear text to another machine."""
    if not server.starttls and server.host not in LOCAL:
        raise BadArgument(
            "--no-starttls is only for a relay on this machine (localhost); "
            f"{server.host} would see mail and login in clear text",
            field="--no-starttls",
        )


def _login(smtp: smtplib.SMTP, user: str, password: str) -> None:
    """One mechanism, PLAIN where offered (over TLS it is as safe as any), else
    LOGIN: smtplib's login would try the next after a refusal, and some servers
    answer a second attempt only after a long pause."""
    offered = str(smtp.esmtp_features.get("auth", "")).upper().split()
    mechanism = "PLAIN" if "PLAIN" in offered or "LOGIN" not in offered else "LOGIN"
    smtp.user, smtp.password = user, password
    method = smtp.auth_plain if mechanism == "PLAIN" else smtp.auth_login
    smtp.auth(mechanism, method)


@contextmanager
def connect(server: Server) -> Iterator[Connection]:
    """A session with the server: STARTTLS (verified against the system's or the
    given CA), then the login when there is one."""
    check(server)
    try:
        smtp = smtplib.SMTP(server.host, server.port, timeout=server.timeout)
    except (OSError, smtplib.SMTPException) as exc:
        raise Unavailable(
            f"cannot reach the mail server {server.host}:{server.port} ({exc}); nothing was sent"
        ) from None
    try:
        try:
            smtp.ehlo()
            if server.starttls:
                if not smtp.has_extn("starttls"):
                    raise Refused(
                        f"the mail server {server.host} offers no STARTTLS: loyalty sends no "
                        "mail and no login in clear text",
                        code="smtp_no_tls",
                    )
                context = ssl.create_default_context(
                    cafile=None if server.cafile is None else str(server.cafile)
                )
                smtp.starttls(context=context)
                smtp.ehlo()
            if server.user is not None and server.password is not None:
                _login(smtp, server.user, server.password)
        except smtplib.SMTPAuthenticationError as exc:
            raise Refused(
                f"the mail server {server.host} refused the login ({exc.smtp_code}); check "
                "LOYALTY_SMTP_USER and LOYALTY_SMTP_PASSWORD or the netrc file",
                code="smtp_login",
            ) from None
        except ssl.SSLError as exc:
            raise Refused(
                f"STARTTLS with {server.host} failed ({exc.reason}); if the server's "
                "certificate is signed by the shop's own CA, give it in LOYALTY_SMTP_CAFILE",
                code="smtp_tls",
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise Unavailable(
                f"the mail server {server.host} failed before sending ({exc}); nothing was sent"
            ) from None
        yield Connection(smtp)
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()
