"""`loyalty messages`: the owner's template, rendered per customer and sent through
a real SMTP server (aiosmtpd, started here, with STARTTLS and a login), then read
back: headers, non-ASCII names, the unsubscribe line, nothing sent twice, a
refused recipient reported. And the mail-merge CSV, the .eml files, the sandbox."""

from __future__ import annotations

import csv
import email
import io
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from .conftest import Shop

aiosmtpd = pytest.importorskip("aiosmtpd")
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

RULES = """\
program: {name: Café Zürich, currency: EUR, timezone: Europe/Zurich, locale: de_CH}
points: {expire_after_months: 1, expire_at: same_day}
earn:
  - {id: base, on: purchase, points_per_unit: 1}
  - {id: welcome, on: enroll, points: 10}
rewards:
  - {id: coffee, name: Kaffee, cost: 50}
"""
TEMPLATE = """\
Subject: {{ customer.first_name }}, {{ notice.points | number }} Punkte verfallen bald

Grüezi {{ customer.first_name }},

{{ notice.points | number }} Punkte verfallen am {{ notice.date | day }}.
Ihr Guthaben: {{ balance | number }} Punkte.
"""
BOUNCE = "gone@example.com"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.attempts: list[str] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        self.attempts.append(address)
        if address == BOUNCE:
            return "550 5.1.1 <gone@example.com>: no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, as a shop's own mail server has."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the test server's certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"shop", b"s3cret")
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd replies 535


@pytest.fixture
def server(certificate: tuple[Path, Path]) -> Iterator[tuple[Inbox, int]]:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    port = _free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticate,
        auth_require_tls=True,
        auth_required=True,
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def cafe(shop: Shop, certificate: tuple[Path, Path]) -> Shop:
    shop.write_rules(RULES)
    shop.clock("2026-03-10")
    given = ("--consent", "email", "--consent-source", "Anmeldeformular", "--at")
    shop.ok("enroll", "zoe", "--name", "Zoë Ünique-Péronne", "--email", "zoe@example.com",
            *given, "2026-03-01T10:00")  # fmt: skip
    shop.ok("enroll", "max", "--name", "Max Muster", "--email", "max@example.com",
            *given, "2026-03-01T10:00")  # fmt: skip
    shop.ok(
        "enroll", "ben", "--name", "Ben", "--email", "ben@example.com", "--at", "2026-03-01T10:00"
    )  # fmt: skip  (no consent)
    shop.ok("enroll", "gus", "--name", "Gus", "--email", BOUNCE, *given, "2026-03-01T10:00")
    (shop.dir / "verfall.txt").write_text(TEMPLATE, encoding="utf-8")
    return shop


@pytest.fixture
def env_tls(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOYALTY_SMTP_CAFILE", str(certificate[0]))


def run_json(result: Any) -> dict[str, Any]:
    import json

    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_messages_go_to_those_who_agreed_and_read_back_right(
    cafe: Shop, server: tuple[Inbox, int], env_tls: None
) -> None:
    inbox, port = server
    result = cafe.run(
        "messages", str(cafe.dir / "verfall.txt"), "--notice", "points_expiring",
        "--from", "hallo@cafe.example", "--smtp", f"127.0.0.1:{port}", "--rate", "6000",
        "--within", "30", "--json",
        env={"LOYALTY_SMTP_USER": "shop", "LOYALTY_SMTP_PASSWORD": "s3cret"},
    )  # fmt: skip
    doc = run_json(result)
    assert (doc["mode"], doc["due"], doc["sent"], doc["no_consent"]) == ("smtp", 3, 2, 1)
    assert [(r["customer_id"], r["reply"]) for r in doc["refused"]] == [("gus", 550)]
    assert "refused: gus <gone@example.com>: 550" in result.stderr
    by_to = {str(m["To"]): m for m in inbox.messages}
    assert sorted(by_to) == ["Max Muster <max@example.com>", "Zoë Ünique-Péronne <zoe@example.com>"]
    zoe = by_to["Zoë Ünique-Péronne <zoe@example.com>"]
    raw = zoe.as_bytes()
    assert b"=?utf-8?" in raw.split(b"\n\n")[0].lower() or b"=?UTF-8?" in raw  # encoded words
    assert all(ord(c) < 128 for c in raw.split(b"\n\n")[0].decode("ascii"))  # headers ASCII
    assert str(zoe["Subject"]) == "Zoë, 10 Punkte verfallen bald"
    assert str(zoe["From"]) == "Café Zürich <hallo@cafe.example>"
    assert str(zoe["List-Unsubscribe"]) == "<mailto:hallo@cafe.example?subject=unsubscribe>"
    assert zoe["Message-ID"] and zoe["Date"]
    body = zoe.get_content()
    assert "Grüezi Zoë," in body and "10 Punkte verfallen am 2. April 2026." in body
    assert body.rstrip().endswith(
        "You receive this because you agreed to hear from Café Zürich by email. "
        "To stop, reply to hallo@cafe.example with the word UNSUBSCRIBE."
    )
    assert "\n-- \n" in body.replace("\r\n", "\n")  # the signature separator

    # A retry, or tomorrow's run, sends nothing twice; the refused one is tried again.
    again = run_json(
        cafe.run(
            "messages",
            str(cafe.dir / "verfall.txt"),
            "--notice",
            "points_expiring",
            "--from",
            "hallo@cafe.example",
            "--smtp",
            f"127.0.0.1:{port}",
            "--rate",
            "6000",
            "--within",
            "30",
            "--json",
            env={"LOYALTY_SMTP_USER": "shop", "LOYALTY_SMTP_PASSWORD": "s3cret"},
        )
    )
    assert (again["sent"], again["already_sent"], len(again["refused"])) == (0, 2, 1)
    assert len(inbox.messages) == 2
    # The notices the messages gave are given.
    pending = cafe.ok("notices", "--pending", "--kind", "points_expiring", "--within", "30")
    assert [r["customer_id"] for r in pending["rows"]] == ["ben", "gus"]
    assert cafe.ok("verify")["ok"]


def test_transactional_messages_need_no_consent_and_carry_no_unsubscribe(
    cafe: Shop, server: tuple[Inbox, int], env_tls: None
) -> None:
    inbox, port = server
    env = {"LOYALTY_SMTP_USER": "shop", "LOYALTY_SMTP_PASSWORD": "s3cret"}
    result = cafe.run(
        "messages", str(cafe.dir / "verfall.txt"), "--notice", "points_expiring",
        "--from", "hallo@cafe.example", "--smtp", f"127.0.0.1:{port}", "--rate", "6000",
        "--within", "30", "--transactional", "--json", env=env,
    )  # fmt: skip
    assert run_json(result)["sent"] == 3
    ben = next(m for m in inbox.messages if "ben@" in str(m["To"]))
    assert ben["List-Unsubscribe"] is None and "UNSUBSCRIBE" not in ben.get_content()


def test_a_wrong_login_or_a_missing_server_sends_nothing(
    cafe: Shop, server: tuple[Inbox, int], env_tls: None
) -> None:
    inbox, port = server
    args = (
        "messages", str(cafe.dir / "verfall.txt"), "--notice", "points_expiring",
        "--from", "hallo@cafe.example", "--rate", "6000", "--within", "30",
    )  # fmt: skip
    wrong = cafe.run(*args, "--smtp", f"127.0.0.1:{port}",
                     env={"LOYALTY_SMTP_USER": "shop", "LOYALTY_SMTP_PASSWORD": "nope"})  # fmt: skip
    assert wrong.exit_code == 1 and "refused the login" in wrong.stderr
    down = cafe.run(*args, "--smtp", f"127.0.0.1:{_free_port()}")
    assert down.exit_code == 75 and "cannot reach the mail server" in down.stderr
    assert inbox.messages == []
    later = cafe.run(*args, "--smtp", f"127.0.0.1:{port}", "--json",
                     env={"LOYALTY_SMTP_USER": "shop", "LOYALTY_SMTP_PASSWORD": "s3cret"})  # fmt: skip
    assert run_json(later)["sent"] == 2


def test_the_login_may_come_from_a_netrc_file(
    cafe: Shop, server: tuple[Inbox, int], env_tls: None
) -> None:
    inbox, port = server
    netrc = cafe.dir / "netrc"
    netrc.write_text("machine 127.0.0.1 login shop password s3cret\n")
    netrc.chmod(0o600)
    result = cafe.run(
        "messages", str(cafe.dir / "verfall.txt"), "--notice", "points_expiring",
        "--from", "hallo@cafe.example", "--smtp", f"127.0.0.1:{port}", "--rate", "6000",
        "--within", "30", "--smtp-netrc", str(netrc), "--json",
    )  # fmt: skip
    assert run_json(result)["sent"] == 2 and len(inbox.messages) == 2


def test_no_mail_goes_in_clear_text_to_another_machine(cafe: Shop) -> None:
    error = cafe.fails(
        2, "messages", str(cafe.dir / "verfall.txt"), "--notice", "points_expiring",
        "--from", "hallo@cafe.example", "--smtp", "mail.example.com", "--no-starttls",
    )  # fmt: skip
    assert "--no-starttls is only for a relay on this machine" in error


def test_a_plain_local_relay_without_starttls(cafe: Shop) -> None:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        args = (
            "messages", str(cafe.dir / "verfall.txt"), "--notice", "points_expiring",
            "--from", "hallo@cafe.example", "--smtp", f"127.0.0.1:{port}", "--within", "30",
            "--rate", "6000",
        )  # fmt: skip
        refused = cafe.run(*args)
        assert refused.exit_code == 1 and "offers no STARTTLS" in refused.stderr
        assert run_json(cafe.run(*args, "--no-starttls", "--json"))["sent"] == 2
    finally:
        controller.stop()
    assert len(inbox.messages) == 2


def test_mail_merge_csv_and_eml_files(cafe: Shop) -> None:
    out = cafe.dir / "merge.csv"
    doc = cafe.ok(
        "messages", str(cafe.dir / "verfall.txt"), "--notice", "points_expiring",
        "--from", "hallo@cafe.example", "--within", "30", "--csv", str(out),
    )  # fmt: skip
    assert doc["files"] == [str(out)] and doc["sent"] == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [r["Email Address"] for r in rows] == ["gone@example.com", "max@example.com",
                                                  "zoe@example.com"]  # fmt: skip
    assert rows[2]["First Name"] == "Zoë" and rows[2]["Subject"] == "Zoë, 10 Punkte verfallen bald"
    assert "UNSUBSCRIBE" in rows[2]["Body"]
    folder = cafe.dir / "eml"
    cafe.ok(
        "messages", str(cafe.dir / "verfall.txt"), "--notice", "points_expiring",
        "--from", "hallo@cafe.example", "--within", "30", "--eml", str(folder),
    )  # fmt: skip
    files = sorted(folder.iterdir())
    assert len(files) == 3
    parsed = email.message_from_bytes(files[-1].read_bytes(), policy=policy.default)
    assert str(parsed["To"]) == "Zoë Ünique-Péronne <zoe@example.com>"
    # writing is not sending: a real send still has all three to do
    assert cafe.ok("notices", "--pending", "--within", "30", "--kind", "points_expiring")["rows"]
    error = cafe.fails(
        2, "messages", str(cafe.dir / "verfall.txt"), "--notice", "points_expiring",
        "--from", "hallo@cafe.example", "--csv", str(cafe.rules),
    )  # fmt: skip
    assert "which this command reads" in error


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("Subject: hi\n\n{% if %}\n", "verfall.txt:3: "),
        ("Subject: hi\n\n{{ nobody.name }}\n", "'nobody' is undefined"),
        ("Subject: hi\n\n{{ ''.__class__.__mro__ }}\n", "unsafe"),
        ("Hello\n\nbody\n", "may only be 'Subject: ...'"),
        ("Subject: {{ notice.reward | number }}\n\nx\n", "the filter 'number' was given None"),
    ],
)
def test_template_errors_stop_the_run_before_anything_is_sent(
    cafe: Shop, template: str, message: str
) -> None:
    (cafe.dir / "verfall.txt").write_text(template, encoding="utf-8")
    error = cafe.fails(
        65, "messages", str(cafe.dir / "verfall.txt"), "--notice", "points_expiring",
        "--from", "hallo@cafe.example", "--within", "30", "--dry-run",
    )  # fmt: skip
    assert message in error


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give one of --csv FILE, --eml FOLDER, --smtp HOST, --dry-run"),
        (["--dry-run", "--smtp", "x"], "give one of --csv FILE"),
        (["--dry-run", "--campaign", "spring"], "give --notice KIND (repeat) or --campaign NAME"),
        (["--dry-run", "--from", "nobody"], "--from 'nobody' is not an email address"),
        (["--dry-run", "--rate", "0"], "--rate must be from 1 to 6000"),
        (["--smtp", "host:99999"], "the port must be 1 to 65535"),
    ],
)
def test_bad_options_are_refused(cafe: Shop, args: list[str], message: str) -> None:
    base = ["messages", str(cafe.dir / "verfall.txt"), "--notice", "points_expiring"]
    if "--from" not in args:
        base += ["--from", "hallo@cafe.example"]
    assert message in cafe.fails(2, *base, *args)


def test_a_campaign_goes_once_per_customer(cafe: Shop) -> None:
    (cafe.dir / "spring.txt").write_text(
        "Subject: Frühling bei {{ shop.name }}\n\nHallo {{ customer.first_name }}!\n",
        encoding="utf-8",
    )
    doc = cafe.ok(
        "messages", str(cafe.dir / "spring.txt"), "--campaign", "spring-2026",
        "--from", "hallo@cafe.example", "--dry-run",
    )  # fmt: skip
    assert [r["key"] for r in doc["rows"]] == [
        "spring/spring-2026/gus",
        "spring/spring-2026/max",
        "spring/spring-2026/zoe",
    ]
    assert doc["no_consent"] == 1


def test_the_rate_limit_pauses_between_messages(
    cafe: Shop, server: tuple[Inbox, int], certificate: tuple[Path, Path]
) -> None:
    """The pause comes between messages (not before the first, nor after the last),
    and each message is recorded as it goes: a run stopped half-way keeps them."""
    from datetime import UTC, datetime

    from loyalty_cli import mailer
    from loyalty_cli import messages as m
    from loyalty_cli.rules import load_rules

    inbox, port = server
    ruleset = load_rules(cafe.rules)
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    settings = m.Settings(
        template=cafe.dir / "verfall.txt",
        sender="hallo@cafe.example",
        notice_kinds=("points_expiring",),
        window=m.Window(within=30),
    )
    log: list[str] = []
    target = mailer.Server("127.0.0.1", port, True, "shop", "s3cret", certificate[0])
    with cafe.store() as store:
        run = m.prepare(store, ruleset, settings, now)
        assert [d.customer_id for d in run.drafts] == ["gus", "max", "zoe"]

        def pause() -> None:
            log.append(f"pause after {len(inbox.messages)}")

        m.send(
            store, run, settings, "Café Zürich", lambda: now, lambda: mailer.connect(target), pause
        )
        assert log == ["pause after 0", "pause after 1"]  # gus was refused, then max, zoe
        assert [d.customer_id for d in run.sent] == ["max", "zoe"]
        again = m.prepare(store, ruleset, settings, now)
        assert (len(again.drafts), again.already_sent) == (1, 2)
