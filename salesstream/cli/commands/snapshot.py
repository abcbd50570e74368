"""`salesstream snapshot`: the batch layer's job, run now: recompute the totals from the event
archive up to the horizon (continuing an unfinished snapshot if there is one), then reconcile
them with the speed layer, as the scheduled SnapshotFunction does. Exits 1 when the
reconciliation finds an unexplained difference. See docs/batch-layer.md."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console

from salesstream.cli.commands.common import (
    CommandError,
    add_command,
    add_endpoint_arguments,
    add_template_arguments,
    load_as_function,
    positive_float,
    print_json,
    session,
)
from salesstream.cli.commands.reconcile import as_json, print_reconciliation
from salesstream.cli.commands.tables import print_table, text
from salesstream.core.batch import SnapshotInfo, Status, shard_horizon_to_json
from salesstream.core.windows import rfc3339

if TYPE_CHECKING:
    import argparse


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "snapshot",
        "recompute the totals from the event archive, then reconcile",
        "The batch layer's job, run now: recompute the totals from the raw archive up to the "
        "horizon (continuing an unfinished snapshot), then reconcile them with the speed layer. "
        "Exit 1 when the reconciliation finds an unexplained difference.",
        [("snapshot and reconcile", ""), ("at most 30 s now, the rest next time", "--time-budget 30")],
    )
    add_endpoint_arguments(parser)
    add_template_arguments(parser)
    parser.add_argument("--no-reconcile", action="store_true", help="only the snapshot")
    parser.add_argument(
        "--time-budget",
        type=positive_float,
        metavar="SECONDS",
        help="stop after this long; the next run continues",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with session(args, start_embedded=False) as current:
        load_as_function(current.template, "SnapshotFunction", "consumers.batch.snapshot")
        from consumers.batch.reconcile import Reconciler
        from consumers.batch.resources import BatchResources
        from consumers.batch.runs import SnapshotBusy
        from consumers.batch.snapshot import SnapshotJob

        resources = BatchResources.from_template(current.endpoint, current.template)
        try:
            outcome = SnapshotJob(resources).run(time_budget_seconds=args.time_budget)
        except SnapshotBusy as busy:
            raise CommandError(f"{busy}; try again once it has finished or its lease has expired") from None
        reconciliation = None
        if outcome.snapshot is not None and not args.no_reconcile:
            reconciliation = Reconciler(resources).reconcile(outcome.snapshot)
    console = Console()
    if outcome.snapshot is None:
        cursor = outcome.cursor
        where = f"{cursor.phase.value}, after {cursor.after_key or 'the start'}" if cursor else "?"
        message = f"snapshot paused ({where}); run `salesstream snapshot` again to continue"
        if args.json:
            print_json({"finished": False, "message": message})
        else:
            console.print(message)
        return 0
    if args.json:
        document: dict[str, Any] = {"finished": True, "snapshot": snapshot_json(outcome.snapshot)}
        if reconciliation is not None:
            document["reconciliation"] = as_json(reconciliation)
        print_json(document)
    else:
        print_snapshot(outcome.snapshot, console, resumed=outcome.resumed)
        if reconciliation is not None:
            print_reconciliation(reconciliation, console)
    return 1 if reconciliation is not None and reconciliation.summary.status is Status.UNEXPLAINED else 0


def snapshot_json(snapshot: SnapshotInfo) -> dict[str, Any]:
    return {
        "snapshot_id": snapshot.snapshot_id,
        "horizon_ms": snapshot.horizon_ms,
        "horizon": rfc3339(snapshot.horizon_ms),
        "window_seconds": snapshot.window_seconds,
        "shards": [shard_horizon_to_json(shard) for shard in snapshot.shards],
        "counts": snapshot.counts,
        "windows_key": snapshot.windows_key,
        "store_days_key": snapshot.store_days_key,
    }


def print_snapshot(snapshot: SnapshotInfo, console: Console, *, resumed: bool) -> None:
    seconds = (snapshot.finished_ms - snapshot.started_ms) / 1000
    console.print(
        f"snapshot {snapshot.snapshot_id}{' (continued)' if resumed else ''}: "
        f"{snapshot.counts.get('events', 0)} events up to {rfc3339(snapshot.horizon_ms)} in {seconds:.1f} s"
    )
    rows = [
        [
            shard.shard_id,
            shard.state.value,
            "for ever (closed)" if shard.horizon_ms is None else rfc3339(shard.horizon_ms),
            shard.last_archived_sequence or "-",
        ]
        for shard in snapshot.shards
    ]
    print_table(
        console,
        "horizon per shard",
        ["shard", "state", "complete up to", text("last archived sequence")],
        rows,
    )
    counts = ", ".join(f"{name} {value}" for name, value in snapshot.counts.items())
    console.print(f"counts: {counts}")
