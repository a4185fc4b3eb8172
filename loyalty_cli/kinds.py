"""The kinds of operations and entries: one word each, defined once."""

from __future__ import annotations

from enum import StrEnum


class OpKind(StrEnum):
    """What happened: one operation per fact, whatever it did to points."""

    ENROLL = "enroll"
    PURCHASE = "purchase"
    EVENT = "event"  # a named action (review, birthday, ...)
    REDEEM = "redeem"
    ADJUST = "adjust"
    REFUND = "refund"
    EXPIRE = "expire"
    TIER = "tier"  # a tier change (event 'change') or a manual floor ('override')
    PROFILE = "profile"
    # Marketing consent on a channel (`category`: email, sms) given or withdrawn
    # (`event`), with its source (`reason`): the history that proves it.
    CONSENT = "consent"
    ERASE = "erase"  # a customer's personal fields removed, for good; `reason` says why
    # Points moved from one member (the operation's customer) to another, their
    # lots' dates kept: a debit entry for the giver, a credit per lot for the receiver.
    TRANSFER = "transfer"
    # A duplicate account folded into another (the operation's customer, who keeps
    # it): a debit entry for the duplicate (always written, 0 points included: it
    # names the duplicate in the chain), a credit per lot moved, its dates kept.
    # The `merges` table says which id now belongs to which account.
    MERGE = "merge"
    MIGRATE = "migrate"  # the store was rewritten; names the old chain heads


class EntryKind(StrEnum):
    """What a line of points is: the documented `kind` of a history entry."""

    ENROLL = "enroll"  # the enroll rules' awards
    EARN = "earn"  # purchases, events, referrals, birthdays
    REDEEM = "redeem"
    ADJUST = "adjust"
    GIFT = "gift"  # a free reward, 0 points
    EXPIRE = "expire"
    REFUND = "refund"
    TIER = "tier"  # a tier change, 0 points, the new tier in `rule`
    TRANSFER = "transfer"  # points given to another member (-) or received (+, a lot)
    MERGE = "merge"  # a duplicate's points (-) moved to the account that keeps them (+, lots)
    BADGE = "badge"  # a game gave a badge, 0 points, the badge in `reward`; never spendable


# Entries that are the rules' awards: what "points earned" counts.
AWARDS = (EntryKind.ENROLL, EntryKind.EARN)
