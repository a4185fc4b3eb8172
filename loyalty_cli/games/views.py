"""What the customer and the owner see of the games: a customer's progress in
words (`loyalty progress`) and the owner's report (`loyalty report games`),
each a documented JSON shape the views for people are drawn from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import NamedTuple

from .model import Game, Games, Play
from .play import Standing, gives, measure, reach, standing, words


def _figure(game: Game, value: Decimal | None) -> object:
    """A total as JSON: money as text for spend milestones, else a whole number."""
    if value is None:
        return None
    if game.kind == "milestones" and game.metric == "spend":
        return f"{value:.2f}"
    return int(value)


@dataclass(frozen=True)
class ProgressResult:
    customer_id: str
    as_of: date
    games: Games
    play: Play
    rewards: dict[str, str]  # catalogue reward id -> name

    def standings(self) -> list[Standing]:
        return [standing(game, self.play, self.as_of) for game in self.games.games]

    def next_reward(self, s: Standing) -> str | None:
        """What the next round gives, less a badge the customer already holds."""
        if s.give is None:
            return None
        held = self.play.badges
        give = replace(s.give, badges=tuple(b for b in s.give.badges if b not in held))
        return gives(give, self.games, self.rewards) or None

    def to_json(self) -> dict[str, object]:
        rows: list[dict[str, object]] = []
        reachable: list[str] = []
        for s in self.standings():
            game = s.game
            money = game.kind == "milestones" and game.metric == "spend"
            row: dict[str, object] = {
                "game": game.id,
                "name": game.name,
                "kind": game.kind,
                "progress": words(s),
                "rounds_completed": s.rounds,
                # Money for spend milestones, a whole number of stamps, purchases,
                # units or points otherwise: two names, one type each.
                ("reached_spend" if money else "reached"): _figure(game, s.current),
                ("target_spend" if money else "target"): _figure(game, s.target),
                "next_reward": self.next_reward(s),
                "within_reach": s.within_reach,
            }
            rows.append(row)
            prize = row["next_reward"]
            if s.within_reach and isinstance(prize, str):
                reachable.append(reach(s, prize))
        held = {p.what: p.day for p in sorted(self.play.paid, key=lambda p: p.day, reverse=True)}
        badges = []
        for badge in self.games.badges:
            if badge.id in self.play.badges:
                badges.append(
                    {
                        "badge": badge.id,
                        "name": badge.name,
                        "description": badge.description,
                        "date": held[badge.id].isoformat(),
                    }
                )
        return {
            "customer_id": self.customer_id,
            "as_of": self.as_of.isoformat(),
            "games": rows,
            "badges": badges,
            "reach": reachable,
        }


class Table(NamedTuple):
    """A report as CSV: its header and rows."""

    header: list[str]
    rows: list[list[object]]


@dataclass
class GameFigures:
    """One game's figures over a report's period."""

    game: Game
    customers: int = 0  # taking part: progress in it, or a round completed
    rounds: set[tuple[str, int]] = field(default_factory=set)  # (customer, round)
    points: int = 0
    rewards: int = 0  # catalogue rewards given
    badges: int = 0


@dataclass(frozen=True)
class GamesReport:
    as_of: date
    start: date | None
    end: date
    rows: tuple[GameFigures, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "as_of": self.as_of.isoformat(),
            "from": None if self.start is None else self.start.isoformat(),
            "to": self.end.isoformat(),
            "games": [
                {
                    "game": r.game.id,
                    "name": r.game.name,
                    "kind": r.game.kind,
                    "customers": r.customers,
                    "rounds_completed": len(r.rounds),
                    "points": r.points,
                    "rewards_given": r.rewards,
                    "badges_given": r.badges,
                }
                for r in self.rows
            ],
        }

    def table(self) -> Table:
        header = [
            "game",
            "name",
            "kind",
            "customers",
            "rounds_completed",
            "points",
            "rewards_given",
            "badges_given",
        ]
        games: list[dict[str, object]] = self.to_json()["games"]  # type: ignore[assignment]
        return Table(header, [[row[h] for h in header] for row in games])


def report(
    games: Games,
    plays: Iterable[Play],
    as_of: date,
    start: date | None,
    end: date,
) -> GamesReport:
    """Per game: the customers taking part (progress in it or a round paid, as
    the ledger stands), and over the period [start, end] the rounds completed,
    the points paid and the rewards and badges given."""
    figures = {g.id: GameFigures(g) for g in games.games}
    for play in plays:
        for game in games.games:
            row = figures[game.id]
            mine = [p for p in play.paid if p.game == game.id]
            if mine or measure(game, play.facts, play.earned, play.base.get(game.id)) > 0:
                row.customers += 1
            for p in mine:
                if p.day > end or (start is not None and p.day < start):
                    continue
                row.rounds.add((str(id(play)), p.round))
                row.points += p.points
                row.rewards += p.kind == "gift"
                row.badges += p.kind == "badge"
    return GamesReport(as_of, start, end, tuple(figures.values()))
