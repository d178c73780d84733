"""The simulated world: customers, cards, devices, terminals and e-commerce merchants, and one day of legit spending.

Everything is a pure function of a ``World``: the population is drawn from ``(seed, POPULATION)`` and each day's
events from ``(seed, stream, day)``, so any day can be regenerated on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from functools import lru_cache

import numpy as np
from scipy.spatial import cKDTree

SECONDS_PER_DAY = 86_400
DAY_OFFSET = 64  # days before day 0 still have a seed (multi-day fraud started before the data begins)
NEAR_TERMINALS = 24  # how many terminals near home a customer uses
RING_DEVICES = 300  # devices shared by fraud rings
MEAN_TX_PER_CUSTOMER_DAY = 1.08  # E[rate] of the customer rate distribution below
NEW_DEVICE_SHARE = 0.02  # legit e-commerce from a one-off device (work laptop, a friend's phone)

COUNTRIES = ("NL", "BE", "DE", "GB", "US", "FR", "IE", "LU", "CN")
MERCHANT_COUNTRY_P = np.array([0.55, 0.08, 0.10, 0.07, 0.08, 0.04, 0.04, 0.02, 0.02])
CHANNELS = ("pos", "ecom")
CATEGORIES = (
    "grocery", "fuel", "restaurant", "pharmacy", "fashion", "electronics", "home_garden", "entertainment",
    "travel", "digital_goods", "marketplace", "gaming", "subscriptions",
)
CATEGORY_MULT = np.array([0.9, 1.4, 1.0, 0.7, 1.8, 3.5, 2.0, 1.1, 5.0, 0.35, 1.3, 0.6, 0.45])
POS_CATEGORY_P = np.array([0.30, 0.12, 0.22, 0.07, 0.10, 0.04, 0.06, 0.09, 0, 0, 0, 0, 0])
ECOM_CATEGORY_P = np.array([0.04, 0, 0.06, 0, 0.16, 0.10, 0.05, 0.05, 0.08, 0.16, 0.15, 0.08, 0.07])
DOW_MULT = np.array([0.97, 0.97, 1.0, 1.02, 1.12, 1.15, 0.77])  # Monday..Sunday

STREAM_POPULATION = 1000
STREAM_LEGIT = 1


@dataclass(frozen=True)
class World:
    """Everything needed to regenerate or continue one simulated world (the events follow from it)."""

    seed: int
    n_customers: int
    n_terminals: int
    n_merchants: int
    start: datetime = datetime(2025, 1, 6)  # a Monday, midnight
    version: int = 1

    def __post_init__(self) -> None:
        if self.seed < 0 or min(self.n_customers, self.n_terminals, self.n_merchants) < 1:
            raise ValueError(f"World needs seed >= 0 and at least one customer/terminal/merchant, got {self}")

    def to_dict(self) -> dict:
        """JSON-ready fields (start as ISO text)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["start"] = self.start.isoformat()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> World:
        """The world described by ``to_dict`` output."""
        return cls(**{**data, "start": datetime.fromisoformat(data["start"])})


@dataclass(frozen=True)
class Population:
    """Per-entity arrays; terminal ids < n_terminals are POS terminals, the rest e-commerce merchants."""

    home_country: np.ndarray
    level_mu: np.ndarray
    level_sigma: np.ndarray
    rate: np.ndarray
    weekend_factor: np.ndarray
    ecom_share: np.ndarray
    peak_hour: np.ndarray
    hour_spread: np.ndarray
    fav_scale: np.ndarray
    first_card: np.ndarray
    n_cards: np.ndarray
    card_owner: np.ndarray
    first_device: np.ndarray
    n_devices: np.ndarray
    near: np.ndarray
    category: np.ndarray
    country: np.ndarray
    merchant_cdf: np.ndarray
    n_devices_total: int
    rows_per_day: float
    pos_share: float


@dataclass(frozen=True)
class DayEvents:
    """One day's events as parallel arrays (category, country and channel follow from the terminal)."""

    customer: np.ndarray
    card: np.ndarray
    terminal: np.ndarray
    amount: np.ndarray
    device: np.ndarray  # -1 where none (card present)
    seconds: np.ndarray  # seconds since the day's midnight
    scenario: np.ndarray

    def __len__(self) -> int:
        return int(self.customer.size)

    def take(self, index: np.ndarray | slice) -> DayEvents:
        """The events at ``index``."""
        return DayEvents(*(getattr(self, f.name)[index] for f in fields(self)))

    @staticmethod
    def concat(parts: list[DayEvents]) -> DayEvents:
        """All parts, in order."""
        return DayEvents(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(DayEvents)))


def day_rng(world: World, stream: int, day: int) -> np.random.Generator:
    """The generator for one (stream, day): independent of every other day."""
    return np.random.default_rng([world.seed, stream, day + DAY_OFFSET])


def world_for_rows(rows: int, seed: int = 7, days: int = 60) -> World:
    """A world whose customers produce about ``rows`` events in ``days`` days."""
    n_customers = max(100, round(rows / (days * MEAN_TX_PER_CUSTOMER_DAY)))
    return World(seed=seed, n_customers=n_customers, n_terminals=max(60, n_customers // 2),
                 n_merchants=max(40, n_customers // 15))


def _cities(rng: np.random.Generator) -> np.ndarray:
    """Twelve city centres, the nine largest in the home country (west of x=70)."""
    x = np.concatenate([rng.uniform(5, 66, 9), rng.uniform(74, 95, 3)])
    return np.column_stack([x, rng.uniform(5, 95, 12)])


def _locations(rng: np.random.Generator, n: int, cities: np.ndarray) -> np.ndarray:
    """Points on a 100 x 100 map: most around cities (larger cities first), the rest spread out."""
    size = 1.0 / np.arange(1, len(cities) + 1) ** 0.8
    city = rng.choice(len(cities), size=n, p=size / size.sum())
    clustered = cities[city] + rng.normal(0, 4.0, size=(n, 2))
    spread = rng.uniform(0, 100, size=(n, 2))
    return np.clip(np.where((rng.random(n) < 0.8)[:, None], clustered, spread), 0, 100)


def _country_at(xy: np.ndarray) -> np.ndarray:
    """Country index of a map point: NL west of x=70, BE south-east, DE north-east."""
    east = xy[:, 0] >= 70
    return np.where(~east, 0, np.where(xy[:, 1] < 50, 1, 2)).astype(np.int8)


def _starts(counts: np.ndarray) -> np.ndarray:
    """First global index of each owner's block of ``counts`` items."""
    return (np.cumsum(counts) - counts).astype(np.int64)


@lru_cache(maxsize=8)
def population(world: World) -> Population:
    """The world's customers, cards, devices, terminals and merchants (cached per world)."""
    rng = day_rng(world, STREAM_POPULATION, 0)
    n_c, n_t, n_m = world.n_customers, world.n_terminals, world.n_merchants
    cities = _cities(rng)
    cust_xy, term_xy = _locations(rng, n_c, cities), _locations(rng, n_t, cities)
    rate = rng.lognormal(np.log(0.9), 0.55, n_c)
    ecom_share = rng.beta(2, 5, n_c)
    n_cards = 1 + (rng.random(n_c) < 0.3)
    n_devices = rng.choice([1, 2, 3], size=n_c, p=[0.5, 0.35, 0.15])
    merchant_country = rng.choice(len(COUNTRIES), size=n_m, p=MERCHANT_COUNTRY_P)
    merchant_country[: min(n_m, len(COUNTRIES))] = np.arange(min(n_m, len(COUNTRIES)))  # every country present
    popularity = 1.0 / (rng.permutation(n_m) + 1.0) ** 1.1
    cdf = np.cumsum(popularity / popularity.sum())
    cdf[-1] = 1.0
    category = np.concatenate([rng.choice(len(CATEGORIES), size=n_t, p=POS_CATEGORY_P),
                               rng.choice(len(CATEGORIES), size=n_m, p=ECOM_CATEGORY_P)]).astype(np.int8)
    k = min(NEAR_TERMINALS, n_t)
    near = cKDTree(term_xy).query(cust_xy, k=k)[1].reshape(n_c, k)
    weekend_factor = rng.lognormal(0, 0.3, n_c)
    week = DOW_MULT.copy()
    week[5:] = week[5:] * weekend_factor.mean()
    return Population(
        home_country=_country_at(cust_xy), level_mu=rng.normal(3.1, 0.45, n_c),
        level_sigma=rng.uniform(0.35, 0.75, n_c), rate=rate, weekend_factor=weekend_factor,
        ecom_share=ecom_share, peak_hour=rng.normal(13.5, 2.5, n_c), hour_spread=rng.uniform(2.5, 5.0, n_c),
        fav_scale=rng.uniform(1.5, 6.0, n_c), first_card=_starts(n_cards), n_cards=n_cards,
        card_owner=np.repeat(np.arange(n_c), n_cards), first_device=_starts(n_devices), n_devices=n_devices,
        near=near.astype(np.int64), category=category,
        country=np.concatenate([_country_at(term_xy), merchant_country]).astype(np.int8),
        merchant_cdf=cdf, n_devices_total=int(n_devices.sum()), rows_per_day=float(rate.sum() * week.mean()),
        pos_share=float(1 - (rate * ecom_share).sum() / rate.sum()),
    )


def day_of_week(world: World, day: int) -> int:
    """0 = Monday .. 6 = Sunday."""
    return (world.start.weekday() + day) % 7


def one_off_device(pop: Population, day: int, index: np.ndarray) -> np.ndarray:
    """Device numbers used once (never part of anyone's usual devices); ``index`` < 10_000 per day and kind."""
    return pop.n_devices_total + RING_DEVICES + day * 20_000 + index


def _seconds(rng: np.random.Generator, peak: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Seconds after midnight around each customer's peak hour, with most night draws re-drawn once."""
    first = np.mod(peak + spread * rng.standard_normal(peak.size), 24)
    second = np.mod(peak + spread * rng.standard_normal(peak.size), 24)
    redraw = (first < 6) & (rng.random(peak.size) < 0.75)
    return (np.where(redraw, second, first) * 3600).astype(np.int64)


def legit_day(world: World, pop: Population, day: int) -> DayEvents:
    """Customers' ordinary spending on ``day`` (unsorted; fraud is added later)."""
    rng = day_rng(world, STREAM_LEGIT, day)
    dow = day_of_week(world, day)
    weekend = dow >= 5
    lam = pop.rate * DOW_MULT[dow] * (pop.weekend_factor if weekend else 1.0)
    cust = np.repeat(np.arange(world.n_customers), rng.poisson(lam))
    n = cust.size
    ecom = rng.random(n) < pop.ecom_share[cust]
    fav = np.minimum((rng.exponential(1.0, n) * pop.fav_scale[cust]).astype(np.int64), pop.near.shape[1] - 1)
    merchant = world.n_terminals + np.searchsorted(pop.merchant_cdf, rng.random(n), side="right")
    terminal = np.where(ecom, merchant, pop.near[cust, fav])
    card = pop.first_card[cust] + (rng.random(n) * pop.n_cards[cust]).astype(np.int64)
    device = pop.first_device[cust] + (rng.random(n) * pop.n_devices[cust]).astype(np.int64)
    one_off = ecom & (rng.random(n) < NEW_DEVICE_SHARE)
    device[one_off] = one_off_device(pop, day, np.arange(int(one_off.sum())))
    seconds = _seconds(rng, pop.peak_hour[cust] + (1.5 if weekend else 0.0), pop.hour_spread[cust])
    level = np.exp(pop.level_mu[cust] + pop.level_sigma[cust] * rng.standard_normal(n))
    amount = np.maximum(np.round(level * CATEGORY_MULT[pop.category[terminal]], 2), 0.2)
    return DayEvents(customer=cust, card=card, terminal=terminal, amount=amount,
                     device=np.where(ecom, device, -1), seconds=seconds, scenario=np.zeros(n, dtype=np.int8))
