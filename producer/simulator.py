"""A point-of-sale fleet: realistic order events as wire bytes, fast and reproducible.

- Stores differ in size (Zipf-like: the k-th largest sells ~1/k^s as much as the largest).
- Each store has one currency (mostly EUR, some USD, GBP, JPY, ...) and its UTC offset;
  `occurred_at` is "now" at the store, to the second.
- Baskets hold 1-5 lines of SKUs from a seeded catalogue with prices per currency.
- A share of events are refunds of one line of a recent sale of the same store.
- Everything but `occurred_at` follows from the seed: event ids, order ids, stores, baskets.
  The same seed gives the same events (and event ids) on every run; a `run_id` goes into the
  id salt, so two runs with the same seed and different run ids never share an event id.
- Optionally, a share of terminals have skewed clocks (`occurred_at` off by up to
  `max_clock_skew_seconds`), and `set_activity` reweights the stores over time (opening hours).

Events are built from pre-rendered JSON fragments, never through pydantic (the producer
validates them), so generating stays far cheaper than validating: see load_tests/bench_producer.py.
Ids (`ids="simulator"`, the default) use '.' as separator so no run of digits can ever look like
a card number. `ids="realistic"` gives what a real retailer sends instead (producer/identifiers.py):
UUID v4 event ids, store-prefixed hex order ids (`S038-9f2c41d07a1b`) and EAN-13 SKUs, all of
them valid contract identifiers; the event ids still map back to their numbers.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from itertools import accumulate
from typing import Final

from producer import identifiers
from salesstream.core.currencies import minor_unit_exponent

# (currency, share of stores, EUR -> currency rate, UTC offsets of its stores in hours)
_CURRENCIES: Final = (
    ("EUR", 0.70, 1.0, (1, 1, 1, 2)),
    ("USD", 0.10, 1.08, (-5, -6, -8)),
    ("GBP", 0.08, 0.85, (0,)),
    ("JPY", 0.04, 162.0, (9,)),
    ("CHF", 0.03, 0.95, (1,)),
    ("SEK", 0.03, 11.4, (1,)),
    ("PLN", 0.02, 4.3, (1,)),
)
# (SKU prefix, number of SKUs, cheapest and dearest price in EUR cents)
_CATEGORIES: Final = (
    ("GRO", 200, 49, 1_500),
    ("BEV", 80, 99, 3_000),
    ("HOM", 60, 299, 8_000),
    ("CLO", 60, 799, 12_000),
    ("ELC", 40, 999, 60_000),
)
_BASKET_SIZES: Final = (1, 2, 3, 4, 5)
_BASKET_WEIGHTS: Final = (35, 25, 20, 12, 8)
_QUANTITIES: Final = (1, 2, 3, 4, 6)
_QUANTITY_WEIGHTS: Final = (70, 18, 7, 3, 2)
_RECENT_SALES: Final = 16  # per store, the sales a refund can refer to
CHUNK: Final = 512  # events per generated chunk (and per submit_many call)
ID_STYLES: Final = ("simulator", "realistic")
IDS_HELP: Final = (
    "realistic: UUID v4 event ids, store-prefixed hex order ids, EAN-13 SKUs (default: simulator)"
)
# A realistic event id is a UUID v4 whose low 62 bits are the event number, scrambled by an odd
# multiplier (invertible modulo 2**62) so the ids look random; the high bits are the run's salt.
_NUMBER_BITS: Final = 62
_NUMBER_MASK: Final = (1 << _NUMBER_BITS) - 1
_SCRAMBLE: Final = 0x5DEECE66D1F2A3B5 & _NUMBER_MASK | 1
_UNSCRAMBLE: Final = pow(_SCRAMBLE, -1, 1 << _NUMBER_BITS)


@dataclass(frozen=True)
class FleetConfig:
    stores: int = 20
    terminals_per_store: int = 3
    seed: int = 0
    refund_share: float = 0.03
    zipf_exponent: float = 1.1
    max_lines: int = 5  # basket sizes 1..max_lines
    run_id: str = ""  # salts the ids: reruns against a persistent stream are not duplicates
    skewed_clock_share: float = 0.0  # share of terminals whose clock is off
    max_clock_skew_seconds: int = 900
    ids: str = "simulator"  # or "realistic": UUID v4 event ids, store-prefixed hex order ids, EAN-13 SKUs

    def __post_init__(self) -> None:
        if self.ids not in ID_STYLES:
            raise ValueError(f"ids must be one of {', '.join(ID_STYLES)}")
        if self.stores < 1 or self.terminals_per_store < 1:
            raise ValueError("a fleet needs at least one store with one terminal")
        if not 1 <= self.max_lines <= len(_BASKET_SIZES):
            raise ValueError(f"max_lines must be 1..{len(_BASKET_SIZES)}")
        if not 0 <= self.refund_share < 1:
            raise ValueError("refund_share must be in [0, 1)")
        if not 0 <= self.skewed_clock_share <= 1 or self.max_clock_skew_seconds < 0:
            raise ValueError("skewed_clock_share must be in [0, 1] and max_clock_skew_seconds >= 0")


@dataclass(frozen=True)
class Store:
    store_id: str
    currency: str
    utc_offset_hours: int
    weight: float  # share of the fleet's sales


@dataclass(frozen=True, slots=True)
class _Sale:
    order_id: str
    line: str  # the JSON of one line, refunded whole
    amount: int


class Fleet:
    def __init__(self, config: FleetConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._rng = random.Random(config.seed)
        seed_text = f"{config.seed}:{config.run_id}" if config.run_id else str(config.seed)
        salt = hashlib.blake2b(seed_text.encode(), digest_size=5).hexdigest()
        self._event_prefix = f"e.{salt}."
        self._order_prefix = f"o.{salt}."
        self._realistic = config.ids == "realistic"
        self._salt = salt
        uuid_salt = hashlib.blake2b(f"uuid:{seed_text}".encode(), digest_size=8).digest()
        self._salt_bits = int.from_bytes(uuid_salt) << 64
        self._events = 0
        self._orders = 0
        self.stores = self._make_stores()
        self._cum_weights = list(accumulate(store.weight for store in self.stores))
        # drawn from a generator of their own, so turning skew on changes no other draw
        self.clock_skews = self._make_clock_skews()
        self._catalogue = self._make_catalogue()
        self._recent: list[deque[_Sale]] = [deque(maxlen=_RECENT_SALES) for _ in self.stores]
        self._head = [
            [
                f'","store_id":"{store.store_id}","terminal_id":"{store.store_id}.t{terminal}","occurred_at":"'
                for terminal in range(1, config.terminals_per_store + 1)
            ]
            for store in self.stores
        ]
        self._middle = [f'","currency":"{store.currency}","lines":[' for store in self.stores]
        self._zones = [timezone(timedelta(hours=store.utc_offset_hours)) for store in self.stores]
        self._second = -1
        self._timestamps: list[str] = []
        self._skewed_timestamps: dict[tuple[int, int], str] = {}

    def _make_stores(self) -> list[Store]:
        rng = self._rng
        count = self.config.stores
        raw = [1 / rank**self.config.zipf_exponent for rank in range(1, count + 1)]
        rng.shuffle(raw)  # the biggest store is not always store-0000
        total = sum(raw)
        width = max(4, len(str(count - 1)))
        currencies = [c for c, *_ in _CURRENCIES]
        shares = [share for _, share, *_ in _CURRENCIES]
        offsets = {c: hours for c, _, _, hours in _CURRENCIES}
        stores = []
        for index in range(count):
            currency = rng.choices(currencies, weights=shares)[0]
            stores.append(
                Store(f"store-{index:0{width}d}", currency, rng.choice(offsets[currency]), raw[index] / total)
            )
        return stores

    def _make_catalogue(self) -> dict[str, list[tuple[str, int]]]:
        """Per currency, for every SKU: (its line's JSON up to the quantity, its unit price)."""
        rng = self._rng
        # barcodes from a generator of their own, so the style of ids changes no other draw
        barcodes = random.Random(f"barcodes:{self.config.seed}")
        skus: list[tuple[str, int]] = []
        for prefix, count, low, high in _CATEGORIES:
            for number in range(count):
                euro_cents = int(low * (high / low) ** rng.random())
                sku = identifiers.ean13(barcodes) if self._realistic else f"{prefix}-{number:05d}"
                skus.append((sku, euro_cents // 100 * 100 + 99))
        catalogue = {}
        for currency, _, rate, _ in _CURRENCIES:
            scale = rate * 10 ** minor_unit_exponent(currency) / 100
            catalogue[currency] = [
                (f'{{"sku":"{sku}","quantity":', max(1, round(cents * scale))) for sku, cents in skus
            ]
        return catalogue

    def _make_clock_skews(self) -> dict[tuple[int, int], int]:
        """(store index, terminal index) -> seconds its clock is off, for a share of terminals."""
        share, limit = self.config.skewed_clock_share, self.config.max_clock_skew_seconds
        if not share:
            return {}
        rng = random.Random(f"clock-skew:{self.config.seed}")
        terminals = [(s, t) for s in range(len(self.stores)) for t in range(self.config.terminals_per_store)]
        chosen = rng.sample(terminals, max(1, round(share * len(terminals))))
        return {terminal: rng.choice((-1, 1)) * rng.randint(1, max(1, limit)) for terminal in sorted(chosen)}

    def _timestamp(self, store: int, terminal: int) -> str:
        now = int(self._clock())
        if now != self._second:
            self._second = now
            moment = datetime.fromtimestamp(now, UTC)
            self._timestamps = [moment.astimezone(zone).isoformat() for zone in self._zones]
            self._skewed_timestamps = {
                (s, t): datetime.fromtimestamp(now + skew, UTC).astimezone(self._zones[s]).isoformat()
                for (s, t), skew in self.clock_skews.items()
            }
        if self._skewed_timestamps:
            return self._skewed_timestamps.get((store, terminal)) or self._timestamps[store]
        return self._timestamps[store]

    # --- the run's shape and its ids --------------------------------------------------------

    def set_activity(self, activity: Sequence[float] | None) -> None:
        """Weigh each store's size by its activity now (0 = closed); None = every store open.
        Only the choice of store changes: baskets, refunds and ids are drawn as before."""
        if activity is None:
            weights = [store.weight for store in self.stores]
        else:
            if len(activity) != len(self.stores) or min(activity) < 0 or not any(activity):
                raise ValueError("activity needs one non-negative weight per store, not all zero")
            weights = [store.weight * level for store, level in zip(self.stores, activity, strict=True)]
        self._cum_weights = list(accumulate(weights))

    @property
    def events_made(self) -> int:
        """Events generated so far; the next event is number events_made + 1."""
        return self._events

    def event_id(self, number: int) -> str:
        if self._realistic:
            return str(uuid.UUID(int=self._salt_bits | (number * _SCRAMBLE & _NUMBER_MASK), version=4))
        return f"{self._event_prefix}{number:x}"

    def event_number(self, event_id: str) -> int | None:
        """The number of an event this fleet minted (1, 2, ...), None for any other id."""
        if self._realistic:
            try:
                value = uuid.UUID(event_id).int
            except ValueError:
                return None
            number = (value & _NUMBER_MASK) * _UNSCRAMBLE & _NUMBER_MASK
            return number if self.event_id(number) == event_id else None
        if not event_id.startswith(self._event_prefix):
            return None
        try:
            return int(event_id[len(self._event_prefix) :], 16)
        except ValueError:
            return None

    def _order_id(self, store: int, number: int) -> str:
        if self._realistic:
            return f"S{store:03d}-{self._salt}{number:x}"
        return f"{self._order_prefix}{number:x}"

    def events(self, count: int) -> list[bytes]:
        """The next `count` events of the fleet, as JSON bytes (UTF-8)."""
        rng = self._rng
        stores = rng.choices(range(len(self.stores)), cum_weights=self._cum_weights, k=count)
        limit = self.config.max_lines
        sizes = rng.choices(_BASKET_SIZES[:limit], weights=_BASKET_WEIGHTS[:limit], k=count)
        lines_needed = sum(sizes)
        skus = [rng.randrange(len(self._catalogue["EUR"])) for _ in range(lines_needed)]
        quantities = rng.choices(_QUANTITIES, weights=_QUANTITY_WEIGHTS, k=lines_needed)
        refunds = [rng.random() < self.config.refund_share for _ in range(count)]
        terminals = [rng.randrange(self.config.terminals_per_store) for _ in range(count)]
        out = []
        cursor = 0
        for store, size, refund, terminal in zip(stores, sizes, refunds, terminals, strict=True):
            recent = self._recent[store]
            self._events += 1
            event_id = (
                self.event_id(self._events) if self._realistic else f"{self._event_prefix}{self._events:x}"
            )
            if refund and recent:
                sale = recent[rng.randrange(len(recent))]
                event_type, order_id, lines, total = "order_refunded", sale.order_id, sale.line, sale.amount
            else:
                catalogue = self._catalogue[self.stores[store].currency]
                parts = []
                amounts = []
                for position in range(cursor, cursor + size):
                    prefix, price = catalogue[skus[position]]
                    quantity = quantities[position]
                    parts.append(f'{prefix}{quantity},"unit_price_minor":{price}}}')
                    amounts.append(quantity * price)
                self._orders += 1
                event_type, order_id = "order_placed", self._order_id(store, self._orders)
                lines, total = ",".join(parts), sum(amounts)
                recent.append(_Sale(order_id, parts[0], amounts[0]))
            cursor += size
            out.append(
                (
                    f'{{"schema_version":1,"event_id":"{event_id}","event_type":"{event_type}",'
                    f'"order_id":"{order_id}{self._head[store][terminal]}{self._timestamp(store, terminal)}'
                    f'{self._middle[store]}{lines}],"total_minor":{total}}}'
                ).encode()
            )
        return out

    def stream(self) -> Iterator[list[bytes]]:
        """Chunks of events, forever."""
        while True:
            yield self.events(CHUNK)


def paced(
    fleet: Fleet,
    *,
    rate: float,
    duration: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[list[bytes]]:
    """`rate` events per second for `duration` seconds, in chunks of ~1/20 s, sleeping in between
    (rate 0: as fast as possible for `duration` seconds)."""
    start = clock()
    if rate <= 0:
        while clock() - start < duration:
            yield fleet.events(CHUNK)
        return
    total = round(rate * duration)
    chunk = max(1, min(CHUNK, round(rate / 20)))
    produced = 0
    while produced < total:
        due = start + produced / rate
        wait = due - clock()
        if wait > 0:
            sleep(wait)
        size = min(chunk, total - produced)
        yield fleet.events(size)
        produced += size
