"""The card-number detector's error rates and scan cost, against the detector it replaced
(load_tests/legacy_cards.py, the baseline) in the same run.

- False positives: 1,000,000 realistic identifiers (load_tests/card_corpus.py `realistic`), each
  in its JSON field, per category and overall. Target: at most 1 per million, none on GTIN SKUs.
- The class no rule can tell apart: all-digit ids of 16 digits with uniformly random leading
  digits (an id in a card's IIN range and length that passes Luhn is a card number by every
  pattern). Measured, not counted in the realistic overall.
- False negatives: the card corpus (every brand, IIN range, length, layout, embedding). Target 0.
- The one designed exception: a 13- or 14-digit card number typed as a whole `sku` value whose
  last digit happens to be a valid GS1 check digit passes as a barcode; its share is measured.
- Scan cost per event, best and median of `repeat` interleaved runs (CPU time of this thread): one scan per
  event and one scan per 500-event chunk (`b"\\n".join`, as `screen_many` and the consumer do),
  on simulator-shaped and realistic-shaped events (the simulator with `ids="realistic"`).

    python -m load_tests.bench_cards [--repeat N] [--identifiers N]   # writes reports/bench_cards.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Final

from load_tests import card_corpus, legacy_cards
from load_tests.bench import Figure
from producer.simulator import Fleet, FleetConfig
from salesstream.core import cards

IDENTIFIERS: Final = 1_000_000
INDISTINGUISHABLE: Final = 100_000
EVENTS: Final = 20_000
CHUNK: Final = 500
SEED: Final = 20261203
REPORT: Final = Path("reports/bench_cards.json")
NOTE_LEGACY: Final = "the detector before (baseline)"

Detector = Callable[[bytes], bool]
DETECTORS: Final[dict[str, Detector]] = {
    "new": cards.contains_card_number,
    "legacy": legacy_cards.contains_card_number,
}


def false_positives(count: int) -> dict[str, dict[str, int]]:
    """Per detector, per category (and "all"): how many realistic identifiers were refused."""
    corpus = list(card_corpus.realistic(SEED, count))
    found: dict[str, dict[str, int]] = {}
    for name, detect in DETECTORS.items():
        hits = Counter(category for category, raw in corpus if detect(raw))
        found[name] = {category: hits[category] for category, _, _ in card_corpus.CATEGORIES}
        found[name]["all"] = sum(hits.values())
    return found


def indistinguishable(count: int) -> dict[str, int]:
    rng = random.Random(SEED + 1)
    ids = [json.dumps({"order_id": f"{rng.randrange(10**16):016d}"}).encode() for _ in range(count)]
    return {name: sum(map(detect, ids)) for name, detect in DETECTORS.items()}


def false_negatives() -> tuple[int, dict[str, int]]:
    corpus = [raw for _, _, raw in card_corpus.cards(SEED)]
    return len(corpus), {name: sum(not detect(raw) for raw in corpus) for name, detect in DETECTORS.items()}


def gtin_exception() -> tuple[int, int]:
    """(13- and 14-digit cards of the corpus, those that pass as a whole `sku` value)."""
    numbers = {number for _, number, _ in card_corpus.cards(SEED, per_range=20) if len(number) in (13, 14)}
    passed = sum(not cards.contains_card_number(json.dumps({"sku": n}).encode()) for n in numbers)
    return len(numbers), passed


def _costs(works: dict[str, Callable[[], object]], count: int, repeat: int) -> dict[str, tuple[float, float]]:
    """Per work, (best, median) microseconds per item over `repeat` runs, CPU time of this thread;
    the works take turns in every round, so a noisy neighbour disturbs them alike."""
    costs: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(repeat):
        for name, work in works.items():
            started = time.thread_time()
            work()
            costs[name].append((time.thread_time() - started) / count * 1e6)
    return {name: (min(runs), statistics.median(runs)) for name, runs in costs.items()}


def _scan_all(detect: Detector, datas: list[bytes]) -> list[bool]:
    return [detect(data) for data in datas]


def shaped_events() -> dict[str, list[bytes]]:
    return {
        "simulator-shaped": Fleet(FleetConfig(stores=200, seed=SEED)).events(EVENTS),
        "realistic-shaped": Fleet(FleetConfig(stores=200, seed=SEED, ids="realistic")).events(EVENTS),
    }


def scan_costs(shapes: dict[str, list[bytes]], repeat: int) -> dict[str, dict[str, tuple[float, float]]]:
    costs: dict[str, dict[str, tuple[float, float]]] = {}
    for shape, events in shapes.items():
        chunks = [b"\n".join(events[start : start + CHUNK]) for start in range(0, len(events), CHUNK)]
        costs[f"{shape}, one scan per event"] = _costs(
            {name: partial(_scan_all, detect, events) for name, detect in DETECTORS.items()},
            len(events),
            repeat,
        )
        costs[f"{shape}, one scan per {CHUNK}-event chunk"] = _costs(
            {name: partial(_scan_all, detect, chunks) for name, detect in DETECTORS.items()},
            len(events),
            repeat,
        )
    return costs


def _per_million(hits: int, count: int) -> float:
    return round(hits / count * 1e6, 2)


def run(repeat: int, identifiers: int = IDENTIFIERS) -> list[Figure]:
    """`make bench`'s interface."""
    figures = []
    positives = false_positives(identifiers)
    per_category = identifiers / len(card_corpus.CATEGORIES)
    for category in [*(c for c, _, _ in card_corpus.CATEGORIES), "all"]:
        count = identifiers if category == "all" else round(per_category)
        new, old = positives["new"][category], positives["legacy"][category]
        figures.append(
            Figure(
                benchmark="cards",
                metric=f"false positives, {category} ({count:,} realistic identifiers)",
                unit="per million",
                best=_per_million(new, count),
                median=_per_million(new, count),
                runs=1,
                baseline=NOTE_LEGACY,
                ratio=round(new / old, 4) if old else None,
                note=f"{new} refused (baseline: {old}, {_per_million(old, count)} per million)",
            )
        )
    lookalikes = indistinguishable(INDISTINGUISHABLE)
    figures.append(
        Figure(
            benchmark="cards",
            metric=f"refused, random 16-digit all-digit ids ({INDISTINGUISHABLE:,}; no rule tells apart)",
            unit="per million",
            best=_per_million(lookalikes["new"], INDISTINGUISHABLE),
            median=_per_million(lookalikes["new"], INDISTINGUISHABLE),
            runs=1,
            baseline=NOTE_LEGACY,
            ratio=round(lookalikes["new"] / lookalikes["legacy"], 2) if lookalikes["legacy"] else None,
            note=f"{lookalikes['new']} refused (baseline: {lookalikes['legacy']})",
        )
    )
    corpus_size, negatives = false_negatives()
    figures.append(
        Figure(
            benchmark="cards",
            metric=f"false negatives, card corpus ({corpus_size:,}: brands x lengths x layouts x embeddings)",
            unit="missed",
            best=negatives["new"],
            median=negatives["new"],
            runs=1,
            baseline=NOTE_LEGACY,
            note=f"baseline missed {negatives['legacy']}",
        )
    )
    short_cards, passed = gtin_exception()
    figures.append(
        Figure(
            benchmark="cards",
            metric=f"13/14-digit cards typed as a whole sku value that pass as a GTIN ({short_cards:,})",
            unit="%",
            best=round(passed / short_cards * 100, 2),
            median=round(passed / short_cards * 100, 2),
            runs=1,
            note=f"{passed} pass by design (valid GS1 check digit); any other field refuses them",
        )
    )
    shapes = shaped_events()
    realistic_events = shapes["realistic-shaped"]
    refused = {name: sum(map(detect, realistic_events)) for name, detect in DETECTORS.items()}
    figures.append(
        Figure(
            benchmark="cards",
            metric=f"realistic-shaped events (UUID ids, 1-5 EAN-13 lines) refused as cards ({EVENTS:,})",
            unit="%",
            best=round(refused["new"] / EVENTS * 100, 3),
            median=round(refused["new"] / EVENTS * 100, 3),
            runs=1,
            baseline=NOTE_LEGACY,
            note=f"{refused['new']} refused (baseline: {refused['legacy']}, "
            f"{refused['legacy'] / EVENTS * 100:.1f}%)",
        )
    )
    for metric, by_detector in scan_costs(shapes, repeat).items():
        (best, median), (legacy_best, _) = by_detector["new"], by_detector["legacy"]
        figures.append(
            Figure(
                benchmark="cards",
                metric=f"scan cost, {metric}",
                unit="us/event",
                best=round(best, 3),
                median=round(median, 3),
                runs=repeat,
                baseline=NOTE_LEGACY,
                ratio=round(best / legacy_best, 2),
                note=f"baseline best {legacy_best:.3f} us/event",
            )
        )
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load_tests.bench_cards", description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--identifiers", type=int, default=IDENTIFIERS, help="realistic identifiers to scan")
    args = parser.parse_args(argv)
    figures = run(args.repeat, args.identifiers)
    for figure in figures:
        ratio = f"  ({figure.ratio:.2f}x {figure.baseline})" if figure.ratio is not None else ""
        print(
            f"{figure.metric}: {figure.best:,} {figure.unit} (median {figure.median:,}){ratio}  {figure.note}"
        )
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps([figure.model_dump() for figure in figures], indent=2) + "\n")
    print(f"written to {REPORT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
