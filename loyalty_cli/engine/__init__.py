"""The engine: every write decided in pure code, from account snapshots.

Each use case is `snapshot -> decide -> append`: the store reads what a
decision needs into a Book (book.py); a decision (awards, spending, refunds,
profiles, tiering, lifecycle) reads the Book and records in it what it
decided (new operations, the accounts after them); the store appends the
Book's new operations in one write. Decisions never touch a store, read a
clock or the environment, so the command line, the import, the nightly step,
and a replay with no database at all run the same code.

Import the modules themselves: this package loads nothing on its own, so the
read-only commands (balance, history) can use the records without the rules.
"""
