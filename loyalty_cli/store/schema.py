"""The ledger's tables, indexes and triggers at the current schema (older files
are brought to it by migrations.py).

What each table and index is for (the README's design notes repeat it):
- `operations`: the facts, one row per thing that happened (an enrollment, a
  purchase, an event, a redemption, an adjustment, a refund, an expiry, a tier
  change or floor, a profile change), with its idempotency key and a digest of
  its request, and the chain hash that covers it and everything it wrote.
- `entries`: one signed points row per award line or debit; a credit's row also
  holds its lot's dates (earned, spendable from, gone on), so a lot is an entry.
- `draws`: which lots each debit took its points from, with the lot's expiry
  day copied (not hashed: verify checks it against the lot) so the points
  drawn from expired lots are one index range.
- `items`: the lines of a receipt of two or more lines (a one-line purchase
  keeps its one line in its operation, as it always has: no bytes added), and
  the lines a refund returned, each with the points it earned or took back;
  keyed by operation, so a receipt's lines are one range.
- `customers`: profiles (the one table whose contact fields change; a salted
  digest chained in operations proves each change), `rulesets`: each rules text
  once, `runs`: the unattended runs (imports, nightly), chained on their own.

Times are whole seconds since 1970 (UTC), days are days since 1970 in the shop:
small integers that compare and index cheaply. Every index serves a measured
query (tests/test_store.py shows each plan):
- operations_txn: idempotency keys (unique) and a retry's lookup;
- operations_customer: an account's purchases, refunds and tier operations, and
  the per-customer report figures; it covers a purchase's category, sku and
  quantity, which the games read with every account (schema 13);
- operations_time: purchases and refunds in a period (summary, activity);
- operations_refund: the refunds of a purchase;
- entries_customer: balances and points by kind, an account's lots, capped
  rules' usage and redemptions;
- entries_time: points by kind in a period (summary, activity, rules);
- entries_budget_RULE: a budgeted rule's lines, one small partial index per
  budgeted rule, made the first time rules with that budget write (budget_index);
- entries_lots: the lots (credit entries), by expiry date, with their points
  (overdue points read from the index alone; the liability, points released
  from pending);
- draws_lot: what is left in a lot;
- draws_expiry: what was drawn from lots that expired by a day (overdue points).
"""

from __future__ import annotations

from collections.abc import Sequence

from .dialect import Conn

APPLICATION_ID = 0x4C4F5931  # "LOY1"

# The order of the fields each hash covers; verify reads them back in this order.
OP_FIELDS = (
    "id, kind, customer_id, occurred, recorded, ruleset, last_entry, txn, content, "
    "amount_cents, event, category, sku, quantity, reward, reason, tier, tier_from, until, "
    "refund_of, clawback, profile"
)
ENTRY_FIELDS = (
    "id, op_id, customer_id, kind, points, occurred, rule, reward, reason, detail, "
    "earned_on, available_on, expires_on"
)
ITEM_FIELDS = "op_id, number, sku, category, quantity, amount_cents, points, earned_by"
DRAW_FIELDS = "id, entry_id, lot_id, points"  # hashed; the lot's expiry is not
DRAW_COLUMNS = f"{DRAW_FIELDS}, expires_on"
RUN_FIELDS = "id, command, as_of, started, finished, summary"
PROFILE_FIELDS = "id, name, email, phone, birthday, referred_by, enrolled, birthday_set"

APPEND_ONLY = (
    "operations",
    "entries",
    "draws",
    "rulesets",
    "runs",
    "items",
    "notices_given",
    "messages_sent",
    "merges",
)

ITEMS_TABLE = """
    CREATE TABLE items (
        op_id INTEGER NOT NULL REFERENCES operations(id),
        number INTEGER NOT NULL,           -- the line's number on its receipt (a return:
                                           -- the number of the sold line it returns)
        sku TEXT, category TEXT,
        quantity INTEGER NOT NULL,         -- units sold (a return: units returned)
        amount_cents INTEGER NOT NULL,     -- what the line cost after its discount
        points INTEGER NOT NULL,           -- what it earned (a return: took back, < 0)
        earned_by TEXT,                    -- a sold line of a receipt of several lines, as
                                           -- JSON: its points by rule, [["base", 59], ...],
                                           -- or the rule that excluded it, "no-gift-cards"
        PRIMARY KEY (op_id, number)
    ) WITHOUT ROWID
    """
TABLES: tuple[str, ...] = (
    """
    CREATE TABLE rulesets (
        id INTEGER PRIMARY KEY,
        version BLOB NOT NULL UNIQUE,      -- sha256 of the text
        source TEXT NOT NULL,              -- the path it was read from
        text TEXT NOT NULL,
        timezone TEXT NOT NULL,
        first_used INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE customers (
        id TEXT PRIMARY KEY,
        name TEXT, email TEXT, phone TEXT,
        birthday TEXT,                     -- YYYY-MM-DD
        referred_by TEXT REFERENCES customers(id),
        enrolled INTEGER NOT NULL,
        recorded INTEGER NOT NULL,
        birthday_set INTEGER,              -- when the birthday was set (recorded, if later)
        salt BLOB NOT NULL                 -- keys the profile digest chained in operations
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE operations (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        customer_id TEXT REFERENCES customers(id),  -- NULL only for a migration
        occurred INTEGER NOT NULL,         -- business time
        recorded INTEGER NOT NULL,
        ruleset INTEGER REFERENCES rulesets(id),
        last_entry INTEGER NOT NULL,       -- its entries are those after the previous
                                           -- operation's last_entry, up to this
        txn TEXT,                          -- idempotency key, when given
        content BLOB,                      -- digest of the request, for key conflicts
        amount_cents INTEGER,              -- a purchase's, or a refund's
        event TEXT, category TEXT, sku TEXT, quantity INTEGER,
        reward TEXT, reason TEXT,
        tier TEXT, tier_from TEXT, until INTEGER,   -- tier changes and floors
        refund_of INTEGER REFERENCES operations(id), clawback INTEGER,  -- refunds
        profile BLOB,                      -- enroll, profile: digest of the profile after
        hash BLOB NOT NULL,
        -- store: a purchase's store or till, when given; writer: the hash chain
        -- it is on (NULL: a file's one chain; on PostgreSQL, the till's own)
        store TEXT,
        writer TEXT
    )
    """,
    """
    CREATE TABLE entries (
        id INTEGER PRIMARY KEY,
        op_id INTEGER NOT NULL REFERENCES operations(id),
        customer_id TEXT NOT NULL REFERENCES customers(id),
        kind TEXT NOT NULL,
        points INTEGER NOT NULL,
        occurred INTEGER NOT NULL,         -- its operation's, for sums over a period
        rule TEXT, reward TEXT, reason TEXT,
        detail TEXT,                       -- kept only when the rules cannot rebuild it
        earned_on INTEGER, available_on INTEGER, expires_on INTEGER  -- a credit's lot
    )
    """,
    """
    CREATE TABLE draws (
        id INTEGER PRIMARY KEY,
        entry_id INTEGER NOT NULL REFERENCES entries(id),  -- the debit
        lot_id INTEGER NOT NULL REFERENCES entries(id),    -- the credit it takes from
        points INTEGER NOT NULL CHECK (points > 0),
        expires_on INTEGER                 -- the lot's expiry day (a copy, checked by verify)
    )
    """,
    ITEMS_TABLE,
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        command TEXT NOT NULL,             -- import-started, import, nightly
        as_of TEXT,                        -- the shop-local day it ran for
        started INTEGER NOT NULL,
        finished INTEGER NOT NULL,
        summary TEXT NOT NULL,             -- the JSON it printed
        hash BLOB NOT NULL
    )
    """,
)
# Reaching customers (schema 8): which notices were given and which messages
# sent, so a cron job never gives or sends one twice. Not chained: they record
# what was said to customers, not points, and hold no personal data (a refused
# message is reported, not kept: the server's reply names the address).
REACHING = (
    """
    CREATE TABLE notices_given (
        key TEXT PRIMARY KEY,              -- the notice's stable key (notices.py)
        customer_id TEXT NOT NULL REFERENCES customers(id),
        kind TEXT NOT NULL,
        given INTEGER NOT NULL,            -- when it was marked given
        how TEXT NOT NULL                  -- 'marked' (notices --mark-given) or 'message'
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE messages_sent (
        key TEXT PRIMARY KEY,              -- template and what it is about (messages.py)
        customer_id TEXT NOT NULL REFERENCES customers(id),
        template TEXT NOT NULL,
        sent INTEGER NOT NULL,             -- when the server took it
        message_id TEXT NOT NULL           -- its Message-ID header
    ) WITHOUT ROWID
    """,
)
# Merged duplicates (schema 10): which customer id now belongs to which account.
# Every read that groups by customer maps a duplicate to the account that keeps
# it (KEEPER). Not hashed itself: verify checks each row against its `merge`
# operation, whose customer is the keeper and whose first entry is the duplicate's.
MERGES_TABLE = """
    CREATE TABLE merges (
        duplicate TEXT PRIMARY KEY REFERENCES customers(id),
        keep TEXT NOT NULL REFERENCES customers(id),
        op_id INTEGER NOT NULL REFERENCES operations(id),
        UNIQUE (keep, duplicate)           -- its index finds a keeper's duplicates
    ) WITHOUT ROWID
    """
TABLES = (*TABLES, *REACHING, MERGES_TABLE)


def keeper(column: str) -> str:
    """SQL for the account a customer id belongs to: the keeper of a merged
    duplicate, else the id itself (a primary-key lookup per row)."""
    return f"COALESCE((SELECT keep FROM merges WHERE duplicate = {column}), {column})"


# Customers that are not merged duplicates: those the reports count.
NOT_MERGED = "id NOT IN (SELECT duplicate FROM merges)"

# A game's round pays a customer once (issue 13): one line of each kind per
# customer, game and round (rule `game:ID#ROUND`), one per badge (its id is the
# line's reward). The engine decides so; the ledger refuses a second line even
# if the engine were wrong. COALESCE: a points line has no reward, and NULLs
# never collide in a unique index. substr, not LIKE: the same on PostgreSQL.
GAME_ROUNDS_INDEX = (
    "CREATE UNIQUE INDEX entries_game_rounds ON entries(customer_id, rule, kind, "
    "(COALESCE(reward, ''))) WHERE substr(rule, 1, 5) = 'game:'"
)

INDEXES = (
    "CREATE UNIQUE INDEX operations_txn ON operations(txn) WHERE txn IS NOT NULL",
    "CREATE INDEX operations_customer "
    "ON operations(customer_id, kind, occurred, amount_cents, category, sku, quantity)",
    "CREATE INDEX operations_time ON operations(kind, occurred, amount_cents)",
    "CREATE INDEX operations_refund ON operations(refund_of) WHERE refund_of IS NOT NULL",
    "CREATE INDEX entries_customer ON entries(customer_id, kind, points)",
    "CREATE INDEX entries_time ON entries(kind, occurred, points)",
    "CREATE INDEX entries_lots ON entries(expires_on, points) WHERE earned_on IS NOT NULL",
    "CREATE INDEX draws_lot ON draws(lot_id, points)",
    "CREATE INDEX draws_expiry ON draws(expires_on, points) WHERE expires_on IS NOT NULL",
    GAME_ROUNDS_INDEX,
)


def _triggers() -> list[str]:
    out = [
        f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} are append-only: add a correcting entry instead'); END"
        for table in APPEND_ONLY
        for action in ("UPDATE", "DELETE")
    ]
    out += [
        "CREATE TRIGGER customers_no_delete BEFORE DELETE ON customers "
        "BEGIN SELECT RAISE(ABORT, 'customers are never deleted'); END",
        KEEP_IDENTITY,
    ]
    return out


# A customer's id, enrollment and referrer never change; the salt changes only
# in an erasure: an UPDATE that empties the personal fields of a customer whose
# `erase` operation is recorded (engine/profiles.erase, store/append.py). A new
# salt makes the digests chained before it untestable against a guess of the
# erased values.
KEEP_IDENTITY = (
    "CREATE TRIGGER customers_keep_identity BEFORE UPDATE OF id, enrolled, recorded, "
    "referred_by, salt ON customers WHEN NEW.id IS NOT OLD.id "
    "OR NEW.enrolled IS NOT OLD.enrolled OR NEW.recorded IS NOT OLD.recorded "
    "OR NEW.referred_by IS NOT OLD.referred_by OR (NEW.salt IS NOT OLD.salt AND NOT "
    "(NEW.name IS NULL AND NEW.email IS NULL AND NEW.phone IS NULL AND NEW.birthday IS NULL "
    "AND EXISTS (SELECT 1 FROM operations WHERE customer_id = NEW.id AND kind = 'erase'))) "
    "BEGIN SELECT RAISE(ABORT, 'a customer''s id, enrollment and referrer never change, "
    "nor their salt but in an erasure'); END"
)


def budget_index(rule: str) -> tuple[str, str]:
    """(name, CREATE statement) of the partial index over a budgeted rule's lines:
    its total across everyone is read on every write that could pay it, and an
    index over every rule's lines would cost every write an index entry per line."""
    name = f"entries_budget_{rule}"
    return name, (f"CREATE INDEX IF NOT EXISTS \"{name}\" ON entries(points) WHERE rule = '{rule}'")


TRIGGERS = frozenset(
    [f"{t}_no_{a}" for t in APPEND_ONLY for a in ("update", "delete")]
    + ["customers_no_delete", "customers_keep_identity"]
)


def create(conn: Conn) -> None:
    """The current schema, in an empty file. One statement per execute:
    executescript() would COMMIT and break the caller's transaction."""
    for statement in (*TABLES, *INDEXES, *_triggers()):
        conn.execute(statement)


def insert_rows(
    conn: Conn,
    ops: Sequence[Sequence[object]],
    entries: Sequence[Sequence[object]],
    draws: Sequence[Sequence[object]],
    items: Sequence[Sequence[object]] = (),
) -> None:
    """Operations (OP_FIELDS, hash[, store[, writer]]), entries (ENTRY_FIELDS) and
    draws (DRAW_FIELDS: the lot's expiry is copied from the lot as they go in),
    each table in as few statements as SQLite's limit on parameters allows: a
    purchase's lines go in one statement, not one per line (on a network every
    statement is a round trip)."""
    # A purchase's store comes after the hash (it is hashed only when given, see
    # chain.op_hash), then the chain it is on (`writer`, not hashed); rows written
    # without them (m005's) have none.
    width = OP_FIELDS.count(",") + 4
    insert_many(
        conn,
        "operations",
        f"{OP_FIELDS}, hash, store, writer",
        [(*row, *[None] * (width - len(row))) for row in ops],
    )
    insert_many(conn, "entries", ENTRY_FIELDS, entries)
    # After the entries: a draw may take from a lot opened in the same batch.
    insert_many(
        conn,
        "draws",
        DRAW_COLUMNS,
        [(*draw, draw[2]) for draw in draws],
        "(?, ?, ?, ?, (SELECT expires_on FROM entries WHERE id = ?))",
    )
    insert_many(conn, "items", ITEM_FIELDS, items)


# Rows per INSERT statement in a batch: one prepared statement serves every full
# batch (a statement of thousands of rows would be prepared, and cached, anew).
_BATCH = 64


def insert_many(
    conn: Conn,
    table: str,
    fields: str,
    rows: Sequence[Sequence[object]],
    row_marks: str | None = None,
) -> None:
    """INSERT rows in multi-row statements: full batches of _BATCH rows through
    one prepared statement, and the rest (a till's few lines) in one more.
    `row_marks`: one row's values, when they are not one `?` per field."""
    if not rows:
        return
    if row_marks is None:
        row_marks = "(" + ", ".join("?" * (fields.count(",") + 1)) + ")"
    full = len(rows) - len(rows) % _BATCH
    if full:
        marks = ", ".join([row_marks] * _BATCH)
        conn.executemany(
            f"INSERT INTO {table} ({fields}) VALUES {marks}",
            (
                [value for row in rows[start : start + _BATCH] for value in row]
                for start in range(0, full, _BATCH)
            ),
        )
    if full < len(rows):
        marks = ", ".join([row_marks] * (len(rows) - full))
        conn.execute(
            f"INSERT INTO {table} ({fields}) VALUES {marks}",
            [value for row in rows[full:] for value in row],
        )


# The schema this version writes; store/migrations.py brings older files to it.
SCHEMA_VERSION = 13
