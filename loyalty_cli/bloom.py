"""A Bloom filter: which of many strings may have been seen before, in a
bounded number of bits, never missing one that was (a false "maybe" now and
then, never a false "no").

An import's first pass over a file uses it to find the txns that may have more
than one row (a receipt's lines) without holding every txn of the file: a set
of a million txns is about 100 MB; this, 2 MB."""

from __future__ import annotations

from collections.abc import Hashable

BITS_PER_ITEM = 16  # with 4 probes: about 1 false "maybe" in 400 when full
PROBES = 4


class Bloom:
    def __init__(self, capacity: int) -> None:
        """Room for `capacity` items at the false-positive rate above (more
        still work, at a higher rate)."""
        self.size = max(64, capacity * BITS_PER_ITEM)
        self.bits = bytearray((self.size + 7) // 8)

    def add(self, item: Hashable) -> bool:
        """Add `item`; whether it may have been added before."""
        # Four probes from one 64-bit hash (Kirsch and Mitzenmacher): the
        # second half, made odd, is the step. hash() of a str is stable within
        # a process, which is all a filter that lives one import needs.
        h = hash(item) & 0xFFFF_FFFF_FFFF_FFFF
        at, step, size, bits = h & 0xFFFF_FFFF, (h >> 32) | 1, self.size, self.bits
        seen = True
        for _ in range(PROBES):
            at %= size
            byte, mask = at >> 3, 1 << (at & 7)
            if not bits[byte] & mask:
                seen = False
                bits[byte] |= mask
            at += step
        return seen
