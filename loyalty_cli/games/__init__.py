"""Games customers play: stamp cards (and every-nth rewards, a card of n),
milestones and badges, from the `games:` and `badges:` sections of the rules.

- model: the section's shapes, and what an account carries for them (Play);
- section: reading the sections (through the rules loader's reader: PyYAML
  stays in rules.py);
- play: pure decisions: the progress a customer's facts give, and what a new
  purchase or event pays;
- views: progress in words for the customer, and the owner's report.

Progress is never stored: it is worked out from the account's facts (its
purchases and events, net of refunds) and the game lines already paid, both
read in the account snapshot's one statement. A game line is an entry of the
purchase or event that completed the round, with rule `game:ID#ROUND`, so an
award is unique per customer, game and round.
"""
