"""The games' part in an earn: the hook between the earn decision (awards.py)
and the games' pure decisions (games/play.py)."""

from __future__ import annotations

from datetime import date

from ..games import play as games
from ..games.model import Fact, Item, Paid, Play, is_game_line
from ..models import Activity, Award, AwardLine, Ruleset
from ..values import to_cents


def play(
    ruleset: Ruleset,
    before: Play,
    activity: Activity,
    award: Award,
    day: date,
    op_id: int,
    explain: bool,
    tier: str | None = None,
) -> tuple[Award, Play]:
    """The award with the lines the activity's games pay added (each after the
    rules' lines), and the play after it; with `explain`, each game it moved and
    the progress in words after it. `op_id` is the operation it will be."""
    book = ruleset.games
    assert book is not None
    fact: Fact | None = None
    if activity.event == "purchase":
        cents = 0 if activity.amount is None else to_cents(activity.amount)
        fact = Fact(
            op_id,
            day,
            "purchase",
            cents,
            cents,
            activity.category,
            activity.sku,
            activity.quantity,
            _items(award),
        )
    elif activity.event in book.events:
        fact = Fact(op_id, day, activity.event)
    earned = before.earned + book.counted(sum(line.points for line in award.lines))
    lines, after = games.decide(book, before, fact, earned, tier)
    if lines:
        paid = tuple(
            Paid(line.game, line.round, _kind(line), line.points, line.badge or line.reward, day)
            for line in lines
        )
        after = Play(after.facts, after.paid + paid, after.earned, after.memo, after.base)
    moved: tuple[tuple[str, str], ...] = ()
    if explain:
        moved = tuple(
            (game.id, games.words(games.standing(game, after, day)))
            for game in book.games
            if games.measure(game, after.facts, after.earned, after.base.get(game.id))
            != games.measure(game, before.facts, before.earned, before.base.get(game.id))
        )
    if not lines and not moved:
        return award, after
    added = tuple(
        AwardLine(line.rule, line.points, line.detail, line.reward, badge=line.badge)
        for line in lines
    )
    return (
        Award(
            award.points + sum(line.points for line in lines),
            award.lines + added,
            award.skipped,
            award.items,
            games=moved,
        ),
        after,
    )


def _items(award: Award) -> tuple[Item, ...]:
    """A receipt's lines (two or more), numbered as the ledger keeps them."""
    if not award.items:
        return ()
    return tuple(
        Item(
            x.number,
            None if x.line.category is None else x.line.category.casefold(),
            None if x.line.sku is None else x.line.sku.casefold(),
            x.line.quantity,
            to_cents(x.line.amount),
        )
        for x in award.items
    )


def _kind(line: games.Line) -> str:
    if line.badge is not None:
        return "badge"
    return "earn" if line.points else "gift"


def rules_points(lines: tuple[tuple[str | None, int], ...]) -> int:
    """The points of award lines the rules (not the games) gave."""
    return sum(points for rule, points in lines if not is_game_line(rule))
