"""`loyalty import-csv`: what tills write, what gets rejected, and re-runs."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from .conftest import EXAMPLE_RULES, Shop


def write(shop: Shop, text: str, name: str = "sales.csv", bom: bool = False) -> str:
    path = shop.dir / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return str(path)


def entry_count(shop: Shop) -> int:
    with shop.store() as store:
        return int(store.conn.execute("SELECT count(*) FROM entries").fetchone()[0])


@pytest.fixture
def till(shop: Shop) -> Shop:
    shop.ok("enroll", "C1", "--at", "2026-01-01")
    shop.ok("enroll", "C2", "--at", "2026-01-01")
    return shop


def imported(shop: Shop, *args: str) -> dict[str, object]:
    doc = shop.ok("import-csv", *args)
    assert doc["rejected"] == 0, doc
    return doc


# --- reading what tills write ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "extra", "bom"),
    [
        ("txn_id,customer_id,amount,date\nR1,C1,12.50,2026-11-20\n", [], False),
        ("Receipt;Customer;Total;Date\nR1;C1;12,50;2026-11-20\n", ["--decimal-comma"], True),
        ("txn_id\tcustomer_id\tamount\tdate\nR1\tC1\t12.50\t2026-11-20\n", [], False),
        ("txn_id|customer_id|amount|date\nR1|C1|$12.50|2026-11-20\n", [], False),
        ("TXN_ID,Customer ID,AMOUNT,Date\n\nR1,C1,12.50,2026-11-20\n\n", [], False),
        (
            "id,who,Brutto,when\nR1,C1,12.50,20/11/2026\n",
            [
                "--map",
                "txn_id=id",
                "--map",
                "customer_id=who",
                "--map",
                "amount=Brutto",
                "--map",
                "date=when",
                "--date-format",
                "%d/%m/%Y",
            ],
            False,
        ),
        (
            'txn_id,customer_id,amount,date\nR1,C1,"1,012.50",2026-11-20\n',
            ["--thousands", ","],
            False,
        ),
    ],
    ids=[
        "plain",
        "bom-semicolon-aliases-decimal-comma",
        "tab",
        "pipe-currency-sign",
        "case-and-blank-lines",
        "map-and-date-format",
        "thousands",
    ],
)
def test_till_formats(till: Shop, text: str, extra: list[str], bom: bool) -> None:
    doc = imported(till, write(till, text, bom=bom), *extra)
    assert (doc["rows_read"], doc["imported"]) == (1, 1)
    history = till.ok("history", "C1")["entries"]
    assert history[0]["txn"] == "R1"
    assert history[0]["amount"] in ("12.50", "1012.50")


def test_a_column_mapped_to_one_field_is_not_taken_for_another_by_its_name(till: Shop) -> None:
    """ "Price" is one of amount's names; mapped as the unit price, it is that alone,
    and the line's amount is quantity x unit price."""
    text = "Invoice,Customer,Qty,Price,Date\nR1,C1,2,4.50,2026-11-20\n"
    maps = ["txn_id=Invoice", "customer_id=Customer", "quantity=Qty", "unit_price=Price"]
    doc = imported(till, write(till, text), *[a for m in maps for a in ("--map", m)])
    assert doc["imported"] == 1
    assert till.ok("history", "C1")["entries"][0]["amount"] == "9.00"


def test_quoted_fields_may_hold_newlines(till: Shop) -> None:
    text = 'txn_id,customer_id,amount,date,notes\nR1,C1,5.00,2026-11-20,"gift wrap,\nno card"\n'
    assert imported(till, write(till, text))["imported"] == 1


def test_a_missing_column_fails_before_anything_is_written(till: Shop) -> None:
    before = entry_count(till)
    path = write(till, "txn_id,customer_id,Betrag,date\nR1,C1,5,2026-11-20\n")
    message = till.fails(65, "import-csv", path)
    assert message == (
        f"error: {path}:1: missing column 'amount' (columns are: txn_id, customer_id, Betrag, "
        "date); name it, or map it with --map amount=COLUMN"
    )
    assert entry_count(till) == before


# --- rejections -------------------------------------------------------------------

REJECTS = """\
txn_id,customer_id,amount,date,category
R1,C1,10.00,2026-11-20,
R2,C1,abc,2026-11-20,
R3,C9,10.00,2026-11-20,
R4,C1,"1,234.50",2026-11-20,
R5,C1,10.00,yesterday,
R6,C1,-5.00,2026-11-20,
R7,,10.00,2026-11-20,
R8,C1,0,2026-11-20,
R1,C1,99.00,2026-11-20,
"""


def test_bad_rows_are_rejected_with_their_line_and_never_stop_the_good_ones(till: Shop) -> None:
    path = write(till, REJECTS)
    rejects = till.dir / "rejects.csv"
    result = till.run("import-csv", path, "--rejects", str(rejects), "--json")
    assert result.exit_code == 65, result.output
    doc = json.loads(result.stdout)
    # R1's two rows are one receipt of two lines; R7, with no customer, a guest sale.
    assert (doc["rows_read"], doc["imported"], doc["rejected"], doc["rows_skipped"]) == (9, 2, 6, 1)
    assert doc["receipt_count"] == 1
    reasons = [
        line.split(": ", 2)[1:]
        for line in result.stderr.splitlines()
        if line.startswith("rejected:")
    ]
    assert reasons == [
        [
            f"{path}:3",
            "amount 'abc' is not a number (write it like 42.50, with a dot and no separators)",
        ],
        [f"{path}:4", "unknown customer 'C9' (enroll them first, or pass --enroll-unknown)"],
        [
            f"{path}:5",
            "amount '1,234.50' is not a number (write it like 42.50, with a dot and no separators) (for 1.234,50 pass --decimal-comma; for 1,234.50 pass --thousands ,)",
        ],
        [
            f"{path}:6",
            "date 'yesterday' is not an ISO 8601 time (write it like 2026-11-27T14:30 or 2026-11-27T14:30:00+01:00)",
        ],
        [
            f"{path}:7",
            "amount '-5.00' is negative (a return needs a refund_of column, a negative quantity, or --cancel-prefix)",
        ],
        [f"{path}:9", "amount '0' must be greater than zero"],
    ]
    assert result.stderr.splitlines()[-1] == f"error: 6 of 9 rows rejected; see {rejects}"
    lines = rejects.read_text().splitlines()
    assert (
        lines[0]
        == "rejected_file,rejected_line,rejected_reason,txn_id,customer_id,amount,date,category"
    )
    assert lines[1].startswith(f"{path},3,") and lines[1].endswith(",R2,C1,abc,2026-11-20,")


def test_unknown_customers_can_be_enrolled_on_the_way(till: Shop) -> None:
    path = write(till, "txn_id,customer_id,amount,date\nR1,C9,10.00,2026-11-20\n")
    doc = imported(till, path, "--enroll-unknown")
    assert (doc["imported"], doc["customers"]) == (1, 1)
    assert till.ok("balance", "C9")["balance"] == 10 + 100  # base + welcome


# --- idempotency and equivalence -------------------------------------------------


def test_reimporting_the_same_file_adds_nothing(till: Shop) -> None:
    path = write(
        till, "txn_id,customer_id,amount,date\nR1,C1,10.00,2026-11-20\nR2,C2,5.00,2026-11-21\n"
    )
    imported(till, path)
    before = entry_count(till)
    again = imported(till, path)
    assert (again["imported"], again["duplicates"], again["points"]) == (0, 2, 0)
    assert entry_count(till) == before


def test_without_a_txn_id_the_key_is_the_files_hash_and_the_line(till: Shop) -> None:
    path = write(till, "customer_id,amount,date\nC1,10.00,2026-11-20\nC1,10.00,2026-11-20\n")
    assert imported(till, path)["imported"] == 2  # two equal rows are two purchases
    assert imported(till, path)["duplicates"] == 2
    txns = {e["txn"] for e in till.ok("history", "C1")["entries"] if e["kind"] == "earn"}
    assert all(t.startswith("csv:") and t.endswith((":2", ":3")) for t in txns)


def test_an_imported_purchase_earns_exactly_what_earn_gives(shop: Shop) -> None:
    shop.write_rules(Path(__file__).parent.parent.joinpath("rules.example.yaml").read_text())
    for cid in ("A", "B"):
        shop.ok("enroll", cid, "--at", "2026-11-01")
    typed = shop.ok(
        "earn", "A", "--amount", "120.00", "--category", "bags", "--at", "2026-11-28T14:00"
    )
    path = write(
        shop, "txn_id,customer_id,amount,date,category\nT1,B,120.00,2026-11-28T14:00,bags\n"
    )
    imported(shop, path)
    history = shop.ok("history", "B")["entries"]
    lines = [(e["rule"], e["points"]) for e in reversed(history) if e["kind"] == "earn"]
    assert lines == [(line["rule"], line["points"]) for line in typed["lines"]]


def test_events_and_refunds_in_the_export(till: Shop) -> None:
    path = write(
        till,
        "txn_id,customer_id,amount,date,event,refund_of\n"
        "R1,C1,40.00,2026-11-20,,\n"
        "V1,C1,,2026-11-20,review,\n"
        "RF1,C1,10.00,2026-11-21,,R1\n",
    )
    doc = imported(till, path)
    assert (doc["imported"], doc["points"]) == (3, 40 + 50 - 10)
    kinds = [e["kind"] for e in reversed(till.ok("history", "C1")["entries"])]
    assert kinds == ["enroll", "earn", "earn", "refund"]


def test_dry_run_writes_nothing_and_sees_its_own_rows(till: Shop) -> None:
    path = write(
        till, "txn_id,customer_id,amount,date\nR1,C9,10.00,2026-11-20\nR2,C9,5.00,2026-11-21\n"
    )
    before = entry_count(till)
    doc = imported(till, path, "--dry-run", "--enroll-unknown")
    assert (doc["dry_run"], doc["imported"], doc["points"]) == (
        True,
        2,
        100 + 10 + 5,
    )  # welcome too
    assert entry_count(till) == before
    assert till.fails(1, "balance", "C9")


def test_each_run_is_recorded_started_and_finished(till: Shop) -> None:
    path = write(till, "txn_id,customer_id,amount,date\nR1,C1,10.00,2026-11-20\n")
    imported(till, path)
    with till.store() as store:
        runs = store.conn.execute("SELECT command, summary FROM runs ORDER BY id").fetchall()
    assert [command for command, _ in runs] == ["import-started", "import"]
    finished = json.loads(runs[1][1])
    assert finished["files"][0]["name"] == path and len(finished["files"][0]["sha256"]) == 64
    assert (finished["rows_read"], finished["imported"]) == (1, 1)


def test_standard_input(till: Shop) -> None:
    result = till.runner.invoke(
        __import__("loyalty_cli.cli", fromlist=["app"]).app,
        ["import-csv", "-", "--json", "--db", till.url or str(till.db), "--rules", str(till.rules)],
        input="txn_id,customer_id,amount,date\nR1,C1,10.00,2026-11-20\n",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files"] == ["<stdin>"]


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["import-csv", "missing.csv"], 66, "missing.csv: no such file"),
        (["import-csv", "-", "-"], 2, "only once"),
        (["import-csv", "x.csv", "--map", "amount"], 2, "should be FIELD=COLUMN"),
        (["import-csv", "x.csv", "--map", "amont=Total"], 2, "unknown field 'amont'"),
    ],
)
def test_bad_invocations(
    till: Shop, monkeypatch: pytest.MonkeyPatch, args: list[str], code: int, fragment: str
) -> None:
    monkeypatch.chdir(till.dir)
    write(till, "txn_id,customer_id,amount,date\nR1,C1,10.00,2026-11-20\n", name="x.csv")
    assert fragment in till.fails(code, *args)


def test_quiet_prints_nothing_on_success(till: Shop) -> None:
    path = write(till, "txn_id,customer_id,amount,date\nR1,C1,10.00,2026-11-20\n")
    result = till.run("import-csv", path, "--quiet")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


def test_other_encodings_are_named_with_encoding_and_refused_otherwise(till: Shop) -> None:
    path = till.dir / "latin1.csv"
    path.write_bytes(
        "txn_id,customer_id,amount,date,category\nR1,C1,5.00,2026-11-20,caf\xe9\n".encode("latin-1")
    )
    before = entry_count(till)
    message = till.fails(65, "import-csv", str(path))
    assert (
        message
        == f"error: {path}:2: not valid text in this encoding (pass --encoding, e.g. --encoding latin-1)"
    )
    assert entry_count(till) == before
    assert imported(till, str(path), "--encoding", "latin-1")["imported"] == 1
    assert till.ok("history", "C1")["entries"][0]["amount"] == "5.00"
    assert "unknown encoding" in till.fails(2, "import-csv", str(path), "--encoding", "klingon")


def test_a_character_cut_off_by_the_end_of_the_file_is_refused_like_any_bad_byte(
    till: Shop,
) -> None:
    """UTF-8 for 'é' is two bytes; a file whose last byte starts a character and
    then ends is not text (found by the soak fuzzing: it escaped as a traceback)."""
    path = till.dir / "cut.csv"
    path.write_bytes(b"txn_id,customer_id,amount,date\nR1,C1,5.00,2026-11-20\nR2,C\xc3")
    before = entry_count(till)
    message = till.fails(65, "import-csv", str(path))
    assert message == (
        f"error: {path}:3: not valid text in this encoding (pass --encoding, e.g. --encoding latin-1)"
    )
    assert entry_count(till) == before


def test_a_file_in_one_chunk_gives_the_ledger_that_typing_its_rows_gives(tmp_path: Path) -> None:
    """The import remembers reads while a chunk's transaction is open; a year of
    mixed rows for a few customers in one chunk (with expiry, tier changes, capped
    reviews, refunds, and rejected rows in between) must leave exactly what
    typing the same rows one by one leaves."""
    import random

    shops = []
    for name in ("imported", "typed"):
        (tmp_path / name).mkdir()
        shop = Shop(tmp_path / name)
        shop.write_rules(EXAMPLE_RULES.read_text())
        for cid in "ABCD":
            shop.ok("enroll", cid, "--at", "2024-12-01")
        shops.append(shop)
    imported_shop, typed_shop = shops
    pick = random.Random(7)
    lines = ["txn_id,customer_id,amount,date,category,event,refund_of"]
    purchases: list[tuple[str, str]] = []
    day = 0
    for n in range(150):
        day += pick.choice((0, 1, 3, 9))
        moment = date(2025, 1, 1) + timedelta(days=day)
        at = f"{moment.isoformat()}T{10 + n % 8:02d}:15"
        cid = pick.choice("ABCD")
        txn = f"T{n}"
        roll = pick.random()
        if n == 40:  # rejected (no rule rewards the event) before E is enrolled
            lines.append(f"{txn},E,,{at},,no-such-event,")
        elif n == 41:
            lines.append(f"{txn},E,10.00,{at},,,")
            typed_shop.ok("enroll", "E", "--at", at)
            typed_shop.ok("earn", "E", "--amount", "10.00", "--txn", txn, "--at", at)
        elif roll < 0.1:
            lines.append(f"{txn},{cid},,{at},,review,")
            typed_shop.ok("earn", cid, "--event", "review", "--txn", txn, "--at", at)
        elif roll < 0.18 and purchases:
            of, owner = pick.choice(purchases)
            lines.append(f"{txn},{owner},5.00,{at},,,{of}")
            result = typed_shop.run(
                "refund", of, "--amount", "5.00", "--txn", txn, "--at", at, "--json"
            )
            assert result.exit_code in (0, 1), result.output  # 1: refunded in full already
        elif roll < 0.22:
            lines.append(f"{txn},{cid},abc,{at},shoes,,")  # rejected, rolled back alone
        else:
            amount = f"{pick.randint(5, 400)}.{pick.randint(0, 99):02d}"
            category = pick.choice(("", "shoes", "bags", "books", "gift-card"))
            lines.append(f"{txn},{cid},{amount},{at},{category},,")
            typed = ["--category", category] if category else []
            typed_shop.ok("earn", cid, "--amount", amount, *typed, "--txn", txn, "--at", at)
            purchases.append((txn, cid))
    path = write(imported_shop, "\n".join(lines) + "\n")
    imported_shop.run("import-csv", path, "--enroll-unknown", "--json")

    def ledger(shop: Shop) -> dict[str, object]:
        return {
            cid: (
                [
                    (e["kind"], e["rule"], e["points"], e["occurred_at"], e["detail"])
                    for e in shop.ok("history", cid)["entries"]
                ],
                shop.ok("balance", cid),
                shop.ok("tier", cid)["tier"],
            )
            for cid in "ABCDE"
        }

    kinds = {e["kind"] for cid in "ABCD" for e in imported_shop.ok("history", cid)["entries"]}
    assert {"earn", "expire", "refund", "tier"} <= kinds, kinds
    assert ledger(imported_shop) == ledger(typed_shop)


@pytest.mark.parametrize(("chunk", "seconds"), [(2, 60.0), (500, 0.0)])
def test_rows_are_neither_lost_nor_doubled_between_chunks(
    till: Shop, monkeypatch: pytest.MonkeyPatch, chunk: int, seconds: float
) -> None:
    """Chunks end after CHUNK rows or CHUNK_SECONDS, whichever comes first; a chunk
    may end on a rejected row."""
    from loyalty_cli import importer

    monkeypatch.setattr(importer, "CHUNK", chunk)
    monkeypatch.setattr(importer, "CHUNK_SECONDS", seconds)
    monkeypatch.setattr(importer, "CHUNK_PAUSE", 0.0)
    path = write(
        till,
        "txn_id,customer_id,amount,date\n"
        + "".join(f"R{n},C{1 + n % 2},{n}.00,2026-11-20\n" for n in range(1, 6))
        + "R6,C1,abc,2026-11-20\nR7,C2,7.00,2026-11-20\n",
    )
    result = till.run("import-csv", path, "--json")
    assert result.exit_code == 65, result.output
    doc = json.loads(result.stdout)
    assert (doc["rows_read"], doc["imported"], doc["rejected"]) == (7, 6, 1)
    assert doc["points"] == 1 + 2 + 3 + 4 + 5 + 7
    earned = sorted(
        e["txn"] for cid in ("C1", "C2") for e in till.ok("history", cid)["entries"] if e["txn"]
    )
    assert earned == ["R1", "R2", "R3", "R4", "R5", "R7"]


def test_a_budget_runs_out_mid_chunk_at_the_row_that_reaches_it(shop: Shop) -> None:
    """A rule's total is remembered while a chunk is open and kept up to date as
    each row adds to it, so the row that reaches the budget gets what is left
    and the next gets nothing, as typed earns would."""
    shop.write_rules(
        """\
        program: {name: Test Shop, currency: USD, timezone: Europe/London}
        earn:
          - {id: base, on: purchase, points_per_unit: 1}
          - {id: launch, on: purchase, points: 50, budget: 120}
          - {id: welcome, on: enroll, points: 40, budget: 100}
        """
    )
    path = write(
        shop,
        "txn_id,customer_id,amount,date\n"
        "T1,G,10.00,2026-11-20 09:01\n"
        "T2,H,abc,2026-11-20 09:02\n"  # rejected in between
        "T3,H,10.00,2026-11-20 09:02\n"
        "T4,I,10.00,2026-11-20 09:03\n"
        "T5,J,10.00,2026-11-20 09:04\n",
    )
    result = shop.run("import-csv", path, "--enroll-unknown", "--json")
    assert result.exit_code == 65, result.output
    assert json.loads(result.stdout)["rejected"] == 1

    def award(cid: str) -> dict[str, int]:
        return {e["rule"]: e["points"] for e in shop.ok("history", cid)["entries"]}

    assert award("G") == {"welcome": 40, "base": 10, "launch": 50}
    assert award("H") == {"welcome": 40, "base": 10, "launch": 50}
    assert award("I") == {"welcome": 20, "base": 10, "launch": 20}
    assert award("J") == {"base": 10}
    explained = shop.ok("earn", "J", "--amount", "1.00", "--dry-run", "--explain")
    assert "budget of 120 points used up" in json.dumps(explained)


def test_the_summary_for_people_names_rows_imported_and_rejected(shop: Shop) -> None:
    """--no-json: the summary is a line on stderr (stdout stays free), read from the
    same document --json prints."""
    path = shop.dir / "till.csv"
    path.write_text(
        "txn_id,customer_id,date,amount\nA1,zed,2026-05-10,10.00\nA2,zed,2026-05-11,20.00\n"
        "A3,zed,2026-05-12,-1\n"
    )
    result = shop.run("import-csv", str(path), "--enroll-unknown", "--no-json")
    assert result.stdout == ""
    # Read with the line breaks taken out: at 80 columns a long temporary path is
    # folded inside the word.
    joined = "".join(result.stderr.split())
    assert f"{path.name}:3rows,imported2,0alreadyimported,1rejected" in joined, result.stderr
