"""Fraud patterns of the simulator, each drawn per day so that any day can be regenerated without earlier days.

Scenario codes: 1 compromised terminal, 2 compromised card, 3 card testing, 4 account takeover, 5 abnormal amount.
Multi-day state (which terminals and cards are compromised) is recomputed from the start draws of the days before.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fraudcore.simulate_world import (
    CATEGORIES,
    CATEGORY_MULT,
    COUNTRIES,
    RING_DEVICES,
    SECONDS_PER_DAY,
    DayEvents,
    Population,
    World,
    day_rng,
    one_off_device,
    population,
)

SCENARIOS = {0: "legit", 1: "compromised_terminal", 2: "compromised_card", 3: "card_testing",
             4: "account_takeover", 5: "abnormal_amount"}
TARGET_SHARE = {1: 0.0025, 2: 0.0020, 3: 0.0012, 4: 0.0008, 5: 0.0008}  # share of all rows, per scenario
TERMINAL_DAYS = (7, 28)  # a compromised terminal stays compromised this many days (inclusive)
CARD_DAYS = (1, 4)
CARD_TX_PER_DAY = (1, 4)
TEST_TINY = (3, 10)
ATO_TX = (1, 3)
ATO_DEVICE_INDEX = 15_000  # new ATO devices come after the day's legit one-off devices

STREAM_TERMINAL_START, STREAM_CARD_START, STREAM_CARD_TX = 11, 12, 13
STREAM_TESTING, STREAM_TAKEOVER, STREAM_ABNORMAL = 14, 15, 16
HIGH_VALUE = [CATEGORIES.index(c) for c in ("electronics", "travel", "marketplace", "fashion")]
TESTING = [CATEGORIES.index(c) for c in ("digital_goods", "gaming", "subscriptions")]


@dataclass(frozen=True)
class Pools:
    """Merchant id pools fraudsters pick from, per home country where it matters."""

    high_value: np.ndarray
    testing: np.ndarray
    foreign_high_value: tuple[np.ndarray, ...]  # by home country: high-value merchants abroad
    rates: dict[int, float]  # expected new events per day, per scenario


def _mean(bounds: tuple[int, int]) -> float:
    return (bounds[0] + bounds[1]) / 2


@lru_cache(maxsize=8)
def pools(world: World) -> Pools:
    """Merchant pools and per-day event rates for ``world``."""
    pop = population(world)
    merchant = np.arange(world.n_terminals, world.n_terminals + world.n_merchants)
    cat, country = pop.category[merchant], pop.country[merchant]
    high = merchant[np.isin(cat, HIGH_VALUE)]
    high = high if high.size else merchant
    testing = merchant[np.isin(cat, TESTING)]
    foreign = []
    for home in range(len(COUNTRIES)):
        pool = high[pop.country[high] != home]
        foreign.append(pool if pool.size else merchant[country != home])
    rows = pop.rows_per_day
    rates = {
        1: TARGET_SHARE[1] * world.n_terminals / max(pop.pos_share, 0.05) / _mean(TERMINAL_DAYS),
        2: TARGET_SHARE[2] * rows / (_mean(CARD_DAYS) * _mean(CARD_TX_PER_DAY)),
        3: TARGET_SHARE[3] * rows / (_mean(TEST_TINY) + 1),
        4: TARGET_SHARE[4] * rows / _mean(ATO_TX),
        5: TARGET_SHARE[5] * rows,
    }
    return Pools(high, testing if testing.size else merchant, tuple(foreign), rates)


def _active(world: World, stream: int, day: int, size: int, rate: float, span: tuple[int, int]) -> np.ndarray:
    """Ids whose compromise (started on a day in the span before) still runs on ``day``; sorted, unique."""
    active = []
    for start in range(day - span[1] + 1, day + 1):
        rng = day_rng(world, stream, start)
        n = rng.poisson(rate)
        ids, length = rng.integers(size, size=n), rng.integers(span[0], span[1] + 1, size=n)
        active.append(ids[start + length > day])
    return np.unique(np.concatenate(active))


def compromised_terminals(world: World, day: int) -> np.ndarray:
    """POS terminals compromised on ``day``: every transaction there that day is fraud (scenario 1)."""
    return _active(world, STREAM_TERMINAL_START, day, world.n_terminals, pools(world).rates[1], TERMINAL_DAYS)


def compromised_cards(world: World, day: int) -> np.ndarray:
    """Cards a fraudster spends with on ``day`` (scenario 2)."""
    n_cards = int(population(world).card_owner.size)
    return _active(world, STREAM_CARD_START, day, n_cards, pools(world).rates[2], CARD_DAYS)


def _pick(rng: np.random.Generator, pool: np.ndarray, n: int) -> np.ndarray:
    return pool[rng.integers(pool.size, size=n)]


def _pick_foreign(rng: np.random.Generator, pls: Pools, home: np.ndarray) -> np.ndarray:
    """A high-value merchant outside each customer's home country."""
    picks = np.empty(home.size, dtype=np.int64)
    for country in np.unique(home):
        rows = np.flatnonzero(home == country)
        picks[rows] = _pick(rng, pls.foreign_high_value[country], rows.size)
    return picks


def _burst_offsets(rng: np.random.Generator, sizes: np.ndarray, gap: tuple[int, int]) -> np.ndarray:
    """Seconds since each burst's first event, for bursts of ``sizes`` events with gaps in ``gap``."""
    gaps = rng.integers(gap[0], gap[1] + 1, size=int(sizes.sum()))
    first = np.repeat(np.cumsum(sizes) - sizes, sizes)
    gaps[first == np.arange(gaps.size)] = 0
    total = np.cumsum(gaps)
    return total - total[first]


def _level(pop: Population, customer: np.ndarray) -> np.ndarray:
    return np.exp(pop.level_mu[customer])


def _events(customer: np.ndarray, card: np.ndarray, terminal: np.ndarray, amount: np.ndarray,
            device: np.ndarray, seconds: np.ndarray, scenario: int) -> DayEvents:
    """Injected fraud events, all labelled ``scenario``."""
    n = customer.size
    return DayEvents(customer=customer, card=card, terminal=terminal, amount=np.round(amount, 2),
                     device=device, seconds=seconds.astype(np.int64), scenario=np.full(n, scenario, np.int8))


def card_fraud(world: World, pop: Population, day: int) -> DayEvents:
    """Scenario 2: each compromised card makes a burst of large, mostly foreign e-commerce purchases."""
    rng, pls = day_rng(world, STREAM_CARD_TX, day), pools(world)
    cards = compromised_cards(world, day)
    sizes = rng.integers(CARD_TX_PER_DAY[0], CARD_TX_PER_DAY[1] + 1, size=cards.size)
    start = rng.integers(0, SECONDS_PER_DAY - 7200, size=cards.size)
    card = np.repeat(cards, sizes)
    n, cust = card.size, pop.card_owner[card]
    ecom, foreign = rng.random(n) < 0.8, rng.random(n) < 0.6
    merchant = np.where(foreign, _pick_foreign(rng, pls, pop.home_country[cust]), _pick(rng, pls.high_value, n))
    terminal = np.where(ecom, merchant, rng.integers(world.n_terminals, size=n))
    mult = np.sqrt(np.maximum(CATEGORY_MULT[pop.category[terminal]], 1.0))
    amount = _level(pop, cust) * rng.uniform(3, 10, n) * mult
    device = np.where(ecom, pop.n_devices_total + rng.integers(RING_DEVICES, size=n), -1)
    seconds = np.repeat(start, sizes) + _burst_offsets(rng, sizes, (60, 1800))
    return _events(cust, card, terminal, amount, device, np.minimum(seconds, SECONDS_PER_DAY - 1), 2)


def card_testing(world: World, pop: Population, day: int) -> DayEvents:
    """Scenario 3: 3-10 tiny e-commerce amounts within minutes on one card, then one large purchase."""
    rng, pls = day_rng(world, STREAM_TESTING, day), pools(world)
    n_bursts = rng.poisson(pls.rates[3])
    cards = rng.integers(pop.card_owner.size, size=n_bursts)
    tiny = rng.integers(TEST_TINY[0], TEST_TINY[1] + 1, size=n_bursts)
    hour = np.where(rng.random(n_bursts) < 0.5, rng.uniform(0, 6, n_bursts), rng.uniform(0, 24, n_bursts))
    start = np.minimum(hour * 3600, SECONDS_PER_DAY - 4000).astype(np.int64)
    sizes = tiny + 1
    card = np.repeat(cards, sizes)
    n, cust = card.size, pop.card_owner[card]
    offsets = _burst_offsets(rng, sizes, (5, 90))
    is_large = np.zeros(n, dtype=bool)
    is_large[np.cumsum(sizes) - 1] = True
    offsets = offsets + np.where(is_large, rng.integers(120, 2400, size=n), 0)
    terminal = np.where(is_large, _pick(rng, pls.high_value, n), _pick(rng, pls.testing, n))
    large = np.maximum(_level(pop, cust) * rng.uniform(5, 15, n), rng.uniform(100, 400, n))
    amount = np.where(is_large, large, rng.uniform(0.5, 3.0, n))
    device = np.repeat(pop.n_devices_total + rng.integers(RING_DEVICES, size=n_bursts), sizes)
    return _events(cust, card, terminal, amount, device, np.repeat(start, sizes) + offsets, 3)


def account_takeover(world: World, pop: Population, day: int) -> DayEvents:
    """Scenario 4: from a brand-new device abroad, 1-3 elevated e-commerce purchases on the customer's card."""
    rng, pls = day_rng(world, STREAM_TAKEOVER, day), pools(world)
    n_events = rng.poisson(pls.rates[4])
    victims = rng.integers(world.n_customers, size=n_events)
    sizes = rng.integers(ATO_TX[0], ATO_TX[1] + 1, size=n_events)
    start = rng.integers(0, SECONDS_PER_DAY - 4000, size=n_events)
    cust = np.repeat(victims, sizes)
    n = cust.size
    card = pop.first_card[cust] + (rng.random(n) * pop.n_cards[cust]).astype(np.int64)
    terminal = _pick_foreign(rng, pls, pop.home_country[cust])
    amount = _level(pop, cust) * rng.uniform(2, 6, n) * np.sqrt(np.maximum(CATEGORY_MULT[pop.category[terminal]], 1))
    device = np.repeat(one_off_device(pop, day, ATO_DEVICE_INDEX + np.arange(n_events)), sizes)
    seconds = np.repeat(start, sizes) + _burst_offsets(rng, sizes, (60, 1200))
    return _events(cust, card, terminal, amount, device, seconds, 4)


def mark_legit_fraud(world: World, pop: Population, day: int, legit: DayEvents) -> DayEvents:
    """Scenarios 1 and 5 on the day's ordinary events: compromised terminals, then abnormal amounts."""
    scenario = legit.scenario.copy()
    scenario[np.isin(legit.terminal, compromised_terminals(world, day))] = 1
    rng = day_rng(world, STREAM_ABNORMAL, day)
    clean = np.flatnonzero(scenario == 0)
    picked = rng.choice(clean, size=min(int(rng.poisson(pools(world).rates[5])), clean.size), replace=False)
    amount = legit.amount.copy()
    cust = legit.customer[picked]
    mult = np.maximum(CATEGORY_MULT[pop.category[legit.terminal[picked]]], 1.0)
    factor = np.maximum(rng.uniform(8, 25, picked.size), np.exp(4 * pop.level_sigma[cust]))
    amount[picked] = np.round(_level(pop, cust) * mult * factor, 2)
    scenario[picked] = 5
    return DayEvents(legit.customer, legit.card, legit.terminal, amount, legit.device, legit.seconds, scenario)


def fraud_day(world: World, pop: Population, day: int, legit: DayEvents) -> DayEvents:
    """The day's legit events with fraud marked, plus injected fraud events (unsorted)."""
    marked = mark_legit_fraud(world, pop, day, legit)
    extra = [card_fraud(world, pop, day), card_testing(world, pop, day), account_takeover(world, pop, day)]
    return DayEvents.concat([marked, *extra])
