"""A customer in one place (`customer show`), marketing consent with its history,
and their data rights: `customer export` and `customer erase`, which removes the
personal fields for good while the points and the chain stay verifiable."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from loyalty_cli.store import Store
from loyalty_cli.store.schema import SCHEMA_VERSION

from .conftest import Shop

PERSONAL = {
    "--name": "Zoë Ünique-Péronne",
    "--email": "zoe.unique@example.com",
    "--phone": "+44 7700 900123",
    "--birthday": "1990-04-17",
}


def enroll_zoe(shop: Shop) -> None:
    shop.clock("2026-03-01")
    args = [a for pair in PERSONAL.items() for a in pair]
    shop.ok(
        "enroll", "C1", *args, "--consent", "email", "--consent-source", "till form", "--at",
        "2026-03-01T10:00",
    )  # fmt: skip


def test_consent_is_given_at_enrollment_and_withdrawn_by_update_with_its_history(
    shop: Shop,
) -> None:
    enroll_zoe(shop)
    shop.clock("2026-03-05")
    changed = shop.ok(
        "update", "C1", "--withdraw", "email", "--consent", "sms", "--consent-source", "website"
    )
    assert changed["changed_fields"] == []
    assert [(c["channel"], c["status"]) for c in changed["consent_changes"]] == [
        ("email", "withdrawn"),
        ("sms", "given"),
    ]
    doc = shop.ok("customer", "show", "C1")
    assert doc["name"] == PERSONAL["--name"] and doc["email"] == PERSONAL["--email"]
    assert doc["email_consent"] == {
        "channel": "email",
        "status": "withdrawn",
        "occurred_at": "2026-03-05T12:00:00Z",
        "source": "website",
    }
    assert doc["sms_consent"] == {
        "channel": "sms",
        "status": "given",
        "occurred_at": "2026-03-05T12:00:00Z",
        "source": "website",
    }
    assert doc["balance"] == 100 and doc["erased"] is None
    assert doc["tier"] is None and doc["tier_status"] is None  # the basic rules have no tiers
    history = shop.ok("customer", "export", "C1")["consent_history"]
    assert [(h["channel"], h["status"], h["occurred_at"], h["source"]) for h in history] == [
        ("email", "given", "2026-03-01T10:00:00Z", "till form"),
        ("email", "withdrawn", "2026-03-05T12:00:00Z", "website"),
        ("sms", "given", "2026-03-05T12:00:00Z", "website"),
    ]
    assert shop.ok("verify")["ok"]


def test_show_gives_the_tier_with_rules_that_have_tiers(example_shop: Shop) -> None:
    example_shop.ok("enroll", "C1", "--name", "Ada")
    doc = example_shop.ok("customer", "show", "C1")
    assert doc["tier"] == "bronze" and doc["tier_status"]["next_tier"] == "silver"
    assert doc["email_consent"] is None and doc["sms_consent"] is None
    shown = example_shop.run("customer", "show", "C1", "--no-json")
    assert shown.exit_code == 0, shown.output
    assert "Marketing by email: never asked" in shown.stdout and "Bronze" in shown.stdout


def test_show_in_words_gives_the_shop_s_days(shop: Shop) -> None:
    """Enrolled and agreeing just after midnight in London (23:00 UTC the day
    before, in summer): the words give the shop's day, the JSON the UTC time."""
    shop.ok(
        "enroll", "C1", "--email", "c1@example.com", "--consent", "email",
        "--consent-source", "till", "--at", "2026-09-01T00:30",
    )  # fmt: skip
    doc = shop.ok("customer", "show", "C1")
    assert doc["enrollment"]["occurred_at"] == "2026-08-31T23:30:00Z"
    assert doc["timezone"] == "Europe/London"
    shown = shop.run("customer", "show", "C1", "--no-json")
    assert shown.exit_code == 0, shown.output
    assert "enrolled 2026-09-01" in shown.stdout
    assert "Marketing by email: given 2026-09-01 (till)" in shown.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--consent", "email"], "--consent needs --consent-source"),
        (["--consent", "fax", "--consent-source", "x"], "--consent 'fax' is not a channel"),
        (["--consent", "email", "--withdraw", "EMAIL"], "channel 'email' is named twice"),
        (["--consent-source", "till"], "--consent-source goes with --consent or --withdraw"),
        ([], "give at least one of"),
    ],
)
def test_bad_consent_options_are_refused_and_nothing_is_written(
    shop: Shop, args: list[str], message: str
) -> None:
    shop.ok("enroll", "C1")
    before = shop.ok("customer", "export", "C1")
    error = shop.fails(2, "update", "C1", *args)
    assert message in error
    after = shop.ok("customer", "export", "C1")
    assert after["consent_history"] == before["consent_history"] == []


def test_unknown_customers_are_refused(shop: Shop) -> None:
    shop.ok("enroll", "C1")
    for args in (["customer", "show", "C9"], ["customer", "export", "C9"]):
        assert "unknown customer 'C9'" in shop.fails(1, *args)
    assert "unknown customer 'C9'" in shop.fails(1, "customer", "erase", "C9", "--reason", "r")
    error = shop.fails(1, "update", "C9", "--withdraw", "sms")
    assert "unknown customer 'C9'" in error


def test_export_holds_everything_about_the_customer(shop: Shop) -> None:
    enroll_zoe(shop)
    shop.ok("update", "C1", "--phone", "+44 7700 900999")
    shop.ok("earn", "C1", "--amount", "12.50", "--txn", "R1")
    shop.ok("redeem", "C1", "--reward", "coffee")
    doc = shop.ok("customer", "export", "C1")
    assert doc["customer_id"] == "C1" and doc["phone"] == "+44 7700 900999"
    assert [(c["kind"], c["fields"]) for c in doc["profile_history"]] == [
        ("enroll", []),
        ("profile", ["phone"]),
    ]
    assert [(e["kind"], e["points"]) for e in doc["entries"]] == [
        ("enroll", 100),
        ("earn", 12),
        ("redeem", -100),
    ]
    assert doc["entries"][1]["txn"] == "R1" and doc["entries"][1]["amount"] == "12.50"
    assert doc["balance"] == 12
    assert "customer id" in doc["kept_after_erasure"]
    assert set(doc) >= {"exported_at", "email_consent", "consent_history", "tier", "erased"}


def _files(db: Path) -> bytes:
    """Every byte SQLite keeps for the ledger: the file, its log and its index."""
    out = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = Path(f"{db}{suffix}")
        if path.exists():
            out += path.read_bytes()
    return out


@pytest.mark.sqlite_only  # reads the ledger file's bytes
def test_erase_removes_the_personal_fields_for_good_and_verify_still_passes(shop: Shop) -> None:
    enroll_zoe(shop)
    # Earlier values, overwritten before the erasure, must not survive in free space.
    shop.ok("update", "C1", "--email", "zoe.older@example.com", "--name", "Zoë Formerly")
    shop.ok("update", "C1", "--email", PERSONAL["--email"], "--name", PERSONAL["--name"])
    shop.ok("earn", "C1", "--amount", "40", "--txn", "R1")
    values = [*PERSONAL.values(), "zoe.older@example.com", "Zoë Formerly"]
    raw = _files(shop.db)
    assert all(v.encode() in raw for v in PERSONAL.values())
    with closing(sqlite3.connect(shop.db)) as conn:
        salt = conn.execute("SELECT salt FROM customers").fetchone()[0]
        ops = conn.execute("SELECT hash FROM operations ORDER BY id").fetchall()
    before = shop.ok("balance", "C1")

    doc = shop.ok("customer", "erase", "C1", "--reason", "erasure request, ticket 4411")
    assert doc["erased_fields"] == ["name", "email", "phone", "birthday"]
    assert doc["already_erased"] is False and doc["purged"] is True

    raw = _files(shop.db)
    for value in values:
        assert value.encode() not in raw, value
        assert value.encode("utf-16-le") not in raw, value
    assert shop.ok("balance", "C1") == {**before, "name": None}
    report = shop.ok("verify")
    assert report["ok"], report["problems"]
    shown = shop.ok("customer", "show", "C1")
    assert [shown[k] for k in ("name", "email", "phone", "birthday")] == [None] * 4
    assert shown["erased"]["reason"] == "erasure request, ticket 4411"
    with closing(sqlite3.connect(shop.db)) as conn:
        # the chain before the erasure is untouched, and the salt is new
        assert conn.execute("SELECT hash FROM operations ORDER BY id").fetchall()[: len(ops)] == ops
        assert conn.execute("SELECT salt FROM customers").fetchone()[0] != salt
        assert conn.execute("SELECT kind, reason FROM operations ORDER BY id DESC").fetchone() == (
            "erase",
            "erasure request, ticket 4411",
        )


def test_an_erased_profile_stays_empty_and_a_second_erase_reports_the_first(shop: Shop) -> None:
    enroll_zoe(shop)
    first = shop.ok("customer", "erase", "C1", "--reason", "request 1")
    again = shop.ok("customer", "erase", "C1", "--reason", "request 2")
    assert again["already_erased"] is True and again["reason"] == "request 1"
    assert again["occurred_at"] == first["occurred_at"]
    error = shop.fails(1, "update", "C1", "--email", "back@example.com")
    assert "was erased on" in error and "new id" in error
    assert "was erased on" in shop.fails(1, "update", "C1", "--withdraw", "email")
    # points still work: the account is not closed, only anonymous
    assert shop.ok("earn", "C1", "--amount", "5")["balance"] == 105
    assert shop.ok("verify")["ok"]


def test_erase_needs_a_reason(shop: Shop) -> None:
    shop.ok("enroll", "C1", "--name", "Ada")
    assert "erase needs --reason" in shop.fails(2, "customer", "erase", "C1")
    assert "erase needs --reason" in shop.fails(2, "customer", "erase", "C1", "--reason", " ")
    assert shop.ok("customer", "show", "C1")["name"] == "Ada"


@pytest.mark.sqlite_only  # edits the file behind loyalty's back (test_postgres: a till role's edits)
def test_the_erased_record_is_still_tamper_evident(shop: Shop) -> None:
    enroll_zoe(shop)
    shop.ok("customer", "erase", "C1", "--reason", "request")
    with closing(sqlite3.connect(shop.db)) as conn:
        conn.execute("UPDATE customers SET name = 'Someone Else'")
        conn.commit()
    result = shop.run("verify")
    assert result.exit_code == 1
    assert "profile is not the one loyalty last recorded" in result.stderr


@pytest.mark.sqlite_only  # SQLite's triggers (test_postgres: the server's)
def test_only_an_erasure_may_change_a_salt(shop: Shop) -> None:
    shop.ok("enroll", "C1", "--name", "Ada")
    shop.ok("enroll", "C2")  # no personal fields at all
    emptied = "name = NULL, email = NULL, phone = NULL, birthday = NULL"
    with closing(sqlite3.connect(shop.db)) as conn:
        for sql in (
            "UPDATE customers SET salt = randomblob(16)",
            "UPDATE customers SET enrolled = enrolled + 1, name = NULL",
            # emptied, as an erasure empties them, but with no erase operation recorded
            f"UPDATE customers SET salt = randomblob(16), {emptied} WHERE id = 'C2'",
            f"UPDATE customers SET salt = randomblob(16), {emptied} WHERE id = 'C1'",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="never change"):
                conn.execute(sql)
    shop.ok("customer", "erase", "C1", "--reason", "request")
    assert shop.ok("verify")["ok"]


@pytest.mark.sqlite_only  # an old ledger file upgraded
def test_a_schema_7_ledger_is_upgraded_so_it_can_erase_and_give_notices(shop: Shop) -> None:
    enroll_zoe(shop)
    shop.ok("earn", "C1", "--amount", "20")
    with closing(sqlite3.connect(shop.db, isolation_level=None)) as conn:
        conn.execute("DROP TRIGGER customers_keep_identity")
        conn.execute(
            "CREATE TRIGGER customers_keep_identity BEFORE UPDATE OF id, enrolled, recorded, "
            "referred_by, salt ON customers "
            "BEGIN SELECT RAISE(ABORT, 'a customer''s id, enrollment and referrer never change'); "
            "END"
        )
        for table in ("notices_given", "messages_sent"):  # schema 8's
            conn.execute(f"DROP TRIGGER {table}_no_update")
            conn.execute(f"DROP TRIGGER {table}_no_delete")
            conn.execute(f"DROP TABLE {table}")
        conn.execute("PRAGMA user_version = 7")
    copy = shop.dir / "v7.db"
    shutil.copy(shop.db, copy)
    with Store.open(shop.db) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        sql = store.conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'customers_keep_identity'"
        ).fetchone()[0]
        assert "but in an erasure" in sql
    assert shop.ok("verify")["ok"]  # the append-only triggers of the new tables are there
    assert shop.ok("notices", "--mark-given")["marked_given"] == 1  # ann's coffee
    shop.ok("customer", "erase", "C1", "--reason", "request")
    assert shop.ok("verify")["ok"]
    assert PERSONAL["--email"].encode() not in _files(shop.db)
    # and the schema-7 trigger would have refused it
    with closing(sqlite3.connect(copy)) as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE customers SET salt = randomblob(16), name = NULL, email = NULL")
