"""`salesstream reconcile`: the speed layer against the latest batch snapshot, up to its horizon.

Prints the summary and every difference with its classification and explanation (`--json`:
one object), stores the result, and exits 1 when any difference is unexplained. `--repair`
restates the differing keys from the snapshot (segments and running totals) with an audit trail
and reconciles again; the exit status is then the repaired state's. See docs/batch-layer.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from salesstream.cli.commands.common import (
    CommandError,
    add_command,
    add_endpoint_arguments,
    add_template_arguments,
    load_as_function,
    print_json,
    session,
)
from salesstream.cli.commands.tables import number, print_table, text
from salesstream.core.batch import Reconciliation, Status, difference_to_json, summary_to_json
from salesstream.core.currencies import format_minor
from salesstream.core.windows import rfc3339

if TYPE_CHECKING:
    import argparse

_SHOWN = 50  # differences printed as a table; --json has them all


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "reconcile",
        "compare the speed layer with the latest batch snapshot; --repair restates it",
        "Compare the speed layer with a batch snapshot up to its horizon; classify and explain "
        "every difference. Exit 1 when a difference is unexplained (after --repair: the repaired "
        "state's verdict).",
        [
            ("against the latest snapshot", ""),
            ("restate the differing keys, with an audit trail", "--repair --operator alice"),
        ],
    )
    add_endpoint_arguments(parser)
    add_template_arguments(parser)
    parser.add_argument(
        "--snapshot", metavar="ID", help="reconcile against this snapshot (default: the latest)"
    )
    parser.add_argument("--repair", action="store_true", help="restate the differing keys from the snapshot")
    parser.add_argument("--operator", help="who repairs, for the audit trail (default: user@host)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with session(args, start_embedded=False) as current:
        load_as_function(current.template, "SnapshotFunction", "consumers.batch.snapshot")
        from consumers.batch.reconcile import NoSnapshot, Reconciler
        from consumers.batch.repair import Repairer
        from consumers.batch.resources import BatchResources

        resources = BatchResources.from_template(current.endpoint, current.template)
        reconciler = Reconciler(resources)
        snapshot = None
        if args.snapshot:
            snapshot = resources.views.snapshot(args.snapshot)
            if snapshot is None:
                raise CommandError(f"no finished snapshot {args.snapshot}")
        try:
            found = reconciler.reconcile(snapshot)
        except NoSnapshot as missing:
            raise CommandError(str(missing)) from None
        repaired = (
            Repairer(resources, reconciler, operator=args.operator).repair(found) if args.repair else None
        )
    if args.json:
        document = {"reconciliation": as_json(found)}
        if repaired is not None:
            document["after_repair"] = as_json(repaired)
        print_json(document)
    else:
        console = Console()
        print_reconciliation(found, console)
        if repaired is not None:
            console.print(
                f"repair: {repaired.summary.repaired} key(s) restated from the snapshot (audit trail kept)"
            )
            print_reconciliation(repaired, console)
    final = repaired or found
    return 1 if final.summary.status is Status.UNEXPLAINED else 0


def as_json(reconciliation: Reconciliation) -> dict[str, Any]:
    return {
        "summary": summary_to_json(reconciliation.summary),
        "differences": [difference_to_json(d) for d in reconciliation.differences],
    }


def print_reconciliation(reconciliation: Reconciliation, console: Console) -> None:
    summary = reconciliation.summary
    style = {Status.CLEAN: "green", Status.EXPLAINED: "yellow", Status.UNEXPLAINED: "red"}[summary.status]
    console.print(
        f"reconciliation {summary.reconciliation_id}: [{style}]{summary.status.value}[/{style}] - "
        f"{summary.keys_compared} keys compared up to {rfc3339(summary.horizon_ms)}, "
        f"{summary.differences} difference(s), {summary.unexplained} unexplained"
    )
    notes = ", ".join(f"{name} {count}" for name, count in summary.notes.items() if count)
    if notes:
        console.print(f"not drift (both layers agree): {notes}")
    if not reconciliation.differences:
        return
    rows = [
        [
            difference.key,
            difference.classification.value,
            format_minor(difference.batch.net_minor, difference.currency),
            format_minor(difference.speed.net_minor, difference.currency),
            Text("yes") if difference.explained else Text("NO", style="red"),
            "; ".join(f"{e.cause.value}: {e.detail}" for e in difference.explanations[:2]) or "-",
        ]
        for difference in reconciliation.differences[:_SHOWN]
    ]
    print_table(
        console,
        "differences",
        ["key", "class", number("batch net"), number("speed net"), "explained", text("why")],
        rows,
    )
    if len(reconciliation.differences) > _SHOWN:
        console.print(f"... and {len(reconciliation.differences) - _SHOWN} more (--json lists all)")
