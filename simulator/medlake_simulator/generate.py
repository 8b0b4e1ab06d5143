"""`medlake-sim generate`: simulate the group and write one delivery folder per plant per day.

Layout of `--out`:

    <plant>/<YYYY-MM-DD>/<system>__<entity>.<csv|jsonl|parquet>   what the plant delivers
    _truth/answers.json      planted signals and their ground truth (never read by the pipeline)
    _truth/pii_labels/<plant>.jsonl  every planted personal value: file, row, column, offsets
    _truth/dirt.json         dirt kinds, documented rates and how many were injected
    _truth/summary.json      rows written per plant and entity
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import queue as queue_module
import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from medlake_simulator import dirt
from medlake_simulator.contracts import ENTITIES
from medlake_simulator.engine import FX_PER_EUR, Simulation, local_fault
from medlake_simulator.plants import PLANTS
from medlake_simulator.signals import Signals, identity_maps
from medlake_simulator.world import World, build_world
from medlake_simulator.writer import Labels, file_name, write_file

TRUTH = "_truth"


@dataclass(frozen=True)
class GenerateResult:
    out: Path
    rows: int
    files: int
    seconds: float


def local_codes(world: World, signals: Signals) -> dict[str, Any]:
    """How each plant names the things the signals are about, and every supplier and material."""
    plants = world.plants.values()
    return {
        "otd_supplier_name": world.suppliers[signals.otd_supplier].name_en,
        "otd_supplier_codes": {
            p.plant.code: p.supplier_codes[signals.otd_supplier]
            for p in plants
            if signals.otd_supplier in p.supplier_codes
        },
        "price_material_codes": {
            p.plant.code: p.material_codes[signals.price_material] for p in plants
        },
        "eco_product_codes": {
            p.plant.code: p.product_codes[signals.eco_product]
            for p in plants
            if signals.eco_product in p.products
        },
        "cluster_product_codes": {
            p.plant.code: p.product_codes[signals.cluster_product]
            for p in plants
            if signals.cluster_product in p.products
        },
        "cluster_fault_codes": {
            p.plant.code: local_fault(p.plant, signals.cluster_fault) for p in plants
        },
        "bad_lot_material_code": world.plants[signals.bad_lot_plant].material_codes[
            signals.bad_lot_material
        ],
        # the increase a finished device's material cost should show, per plant and product,
        # in local currency per unit (BOM quantity x price increase of the component)
        "price_product_cost_increase": {
            p.plant.code: {
                p.product_codes[prod]: round(
                    world.products[prod].bom[signals.price_material]
                    * world.materials[signals.price_material].price_eur
                    * FX_PER_EUR[p.plant.currency]
                    * signals.price_increase,
                    4,
                )
                for prod in p.products
                if signals.price_material in world.products[prod].bom
            }
            for p in plants
        },
        **identity_maps(world),
    }


@dataclass
class _Part:
    rows: Counter[str]
    files: int
    dirt: Counter[str]
    dirt_rows: Counter[str]
    found: dict[str, Any]
    labels: int


def _run_plants(
    out: Path, start: dt.date, days: int, scale: float, seed: int, codes: list[str], progress: Any
) -> _Part:
    """Simulate and write the given plants (plants are independent of each other)."""
    world = build_world(seed, start, scale)
    signals = Signals(start, days)
    sim = Simulation(world, signals, seed, scale)
    log = dirt.DirtLog()
    rows: Counter[str] = Counter()
    files = labelled = 0
    plants = [p for p in PLANTS if p.code in codes]
    handles = {
        p.code: (out / TRUTH / "pii_labels" / f"{p.code}.jsonl").open("w", encoding="utf-8")
        for p in plants
    }
    try:
        labels = {code: Labels(handle) for code, handle in handles.items()}
        for index in range(days):
            day = start + dt.timedelta(days=index)
            for plant in plants:
                records = sim.run_day(plant.code, day)
                rng = np.random.default_rng([seed, 500, index, PLANTS.index(plant)])
                for entity in ENTITIES:
                    delivered = dirt.apply(records.get(entity.key, []), entity, plant, rng, log)
                    cases = dirt.special_cases(plant, entity, index, days) if delivered else set()
                    for case in cases:
                        log.counts[case] += 1
                    relative = f"{plant.code}/{day.isoformat()}/{file_name(entity, plant)}"
                    rows[f"{plant.code}/{entity.key}"] += write_file(
                        out, relative, delivered, entity, plant, day, cases, labels[plant.code]
                    )
                    files += 1
                progress(1)
        labelled = sum(label.count for label in labels.values())
    finally:
        for handle in handles.values():
            handle.close()
    return _Part(rows, files, log.counts, log.rows, signals.found, labelled)


_WORKER: dict[str, Any] = {}  # set in each pool worker by _init_worker


def _init_worker(queue: Any, parent: int) -> None:
    """Pool initializer: keep the progress queue, and stop when the generating process dies."""

    _WORKER["progress"] = queue

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _worker(args: tuple[Path, dt.date, int, float, int, list[str]]) -> _Part:
    out, start, days, scale, seed, codes = args
    return _run_plants(out, start, days, scale, seed, codes, _WORKER["progress"].put)


def _partition(workers: int) -> list[list[str]]:
    """Spread plants over workers by size, largest first (stable for the same count)."""
    groups: list[list[str]] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for p in sorted(PLANTS, key=lambda q: (-q.size, q.code)):
        k = load.index(min(load))
        groups[k].append(p.code)
        load[k] += p.size
    return [g for g in groups if g]


def generate(
    out: Path,
    *,
    start: dt.date,
    days: int,
    scale: float,
    seed: int,
    progress: bool = True,
    workers: int = 1,
) -> GenerateResult:
    """Write `days` daily deliveries of every plant under `out` (replacing what was there).

    Plants are simulated independently, so `workers` processes share them; the files are
    the same whatever the number of workers.
    """

    if days < 1:
        raise ValueError("--days must be at least 1")
    if scale <= 0:
        raise ValueError("--scale must be greater than 0")
    began = time.perf_counter()
    if out.exists() and any(out.iterdir()):
        if not (out / TRUTH / "summary.json").exists():
            raise ValueError(
                f"{out} is not empty and is not a simulator output folder "
                f"(no {TRUTH}/summary.json); choose an empty or new folder"
            )
        shutil.rmtree(out)
    (out / TRUTH / "pii_labels").mkdir(parents=True)
    steps = tqdm(total=days * len(PLANTS), unit="plant-day", disable=not progress, desc="generate")
    if workers <= 1:
        parts = [_run_plants(out, start, days, scale, seed, [p.code for p in PLANTS], steps.update)]
    else:
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        groups = _partition(min(workers, len(PLANTS)))
        with ctx.Pool(len(groups), _init_worker, (queue, os.getpid())) as pool:
            pending = pool.map_async(_worker, [(out, start, days, scale, seed, g) for g in groups])
            done = 0
            while done < days * len(PLANTS):
                if pending.ready() and queue.empty():
                    break
                try:
                    steps.update(queue.get(timeout=0.5))
                    done += 1
                except queue_module.Empty:
                    continue
            parts = pending.get()
    steps.close()
    world = build_world(seed, start, scale)
    signals = Signals(start, days)
    signals.found.update(local_codes(world, signals))
    log = dirt.DirtLog()
    rows: Counter[str] = Counter()
    files = labelled = 0
    for part in parts:
        rows.update(part.rows)
        files += part.files
        log.counts.update(part.dirt)
        log.rows.update(part.dirt_rows)
        signals.found.update(part.found)
        labelled += part.labels
    truth = out / TRUTH
    (truth / "answers.json").write_text(json.dumps(signals.answers(), indent=2, ensure_ascii=False))
    (truth / "dirt.json").write_text(json.dumps(log.to_json(), indent=2, ensure_ascii=False))
    summary = {
        "start": start.isoformat(),
        "days": days,
        "scale": scale,
        "seed": seed,
        "rows_total": sum(rows.values()),
        "files": files,
        "pii_labels": labelled,
        "rows": dict(sorted(rows.items())),
    }
    (truth / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return GenerateResult(out, sum(rows.values()), files, time.perf_counter() - began)
