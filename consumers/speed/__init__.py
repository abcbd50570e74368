"""The speed layer: tumbling-window totals per shard, store and currency."""
