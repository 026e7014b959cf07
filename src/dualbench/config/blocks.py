"""Repeat blocks: the order in which a block runs its layouts.

A block runs every layout of a scenario and precision once, back to back, so that drift of
the machine (temperature, frequency, a neighbour's load) hits alone and co-located runs alike
and the analysis can pair them (dualbench.analysis.intervals). The order varies from block to
block so that no layout always runs first, when the machine is coolest, or last (randomised
interleaving: Abedi and Brecht's RMIT; Google Benchmark's random interleaving).

While there are few enough layouts (up to 6, 720 orders), the orders are the layouts'
permutations in a seeded shuffle, and block r takes the r-th: blocks 1..n! all differ, and
over n! blocks every layout takes every position equally often. Beyond that each block draws
its own seeded shuffle. Either way a block's order depends only on the seed, the scenario, the
precision and its number, never on how many blocks there are: raising ``repeats`` leaves the
existing blocks (and their cache keys) as they were.
"""

from __future__ import annotations

import itertools
import math
import random
import zlib

# Above this many orders the permutations are not listed (6 layouts: 720).
MAX_LISTED_ORDERS = 720


def _rng(*parts) -> random.Random:
    # crc32 rather than hash(): str hashes are salted per process.
    return random.Random(zlib.crc32("/".join(map(str, parts)).encode()))


def block_order(
    layouts: list[str], seed: int, scenario: str, precision: str, repeat: int
) -> list[str]:
    """The order in which block ``repeat`` (1-based) of ``scenario`` x ``precision`` runs
    ``layouts``."""
    if repeat < 1:
        raise ValueError(f"blocks are numbered from 1, not {repeat}")
    if math.factorial(len(layouts)) <= MAX_LISTED_ORDERS:
        orders = list(itertools.permutations(layouts))
        _rng(seed, scenario, precision).shuffle(orders)
        return list(orders[(repeat - 1) % len(orders)])
    order = list(layouts)
    _rng(seed, scenario, precision, repeat).shuffle(order)
    return order
