"""The order in which a measuring session's round runs its trials.

A round runs every trial of a scenario and precision once (each layout, each sweep point), back
to back in warm workers, so that drift of the machine (temperature, frequency, a neighbour's
load) hits alone and co-located trials alike and the analysis can pair them within the round
(dualbench.analysis.intervals). The order varies from round to round so that no trial always
runs first or last (randomised multiple interleaved trials: Abedi and Brecht, ICPE 2017;
Google Benchmark's random interleaving).

While there are few enough trials (up to 6, 720 orders), the orders are the trials'
permutations in a seeded shuffle, and round r takes the r-th: rounds 1..n! all differ, and
over n! rounds every trial takes every position equally often. Beyond that each round draws
its own seeded shuffle. Either way a round's order depends only on the seed, the scenario, the
precision and its number, never on how many rounds there are, so a session stopped early by
``rounds: auto`` ran the same first rounds as a longer one.
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


def trial_order(
    layouts: list[str], seed: int, scenario: str, precision: str, repeat: int
) -> list[str]:
    """The order in which round ``repeat`` (1-based) of ``scenario`` x ``precision`` runs
    ``layouts`` (its trials: layouts and sweep points)."""
    if repeat < 1:
        raise ValueError(f"rounds are numbered from 1, not {repeat}")
    if math.factorial(len(layouts)) <= MAX_LISTED_ORDERS:
        orders = list(itertools.permutations(layouts))
        _rng(seed, scenario, precision).shuffle(orders)
        return list(orders[(repeat - 1) % len(orders)])
    order = list(layouts)
    _rng(seed, scenario, precision, repeat).shuffle(order)
    return order
