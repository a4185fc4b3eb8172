"""loyalty: customer-loyalty points for small shops, on an append-only SQLite ledger."""

__version__ = "0.1.0"
