"""The pure domain core: the order-event contract, money, window math, reducers,
reconciliation. Nothing here imports boto3 or touches the network (a unit test enforces it)."""
