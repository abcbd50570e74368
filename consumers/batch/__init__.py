"""The batch layer: the snapshot job (recompute from the event archive), the reconciliation with
the speed layer, and the views the serving layer reads. See docs/batch-layer.md."""
