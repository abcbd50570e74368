"""What every Lambda function shares: the botocore config, settings, the quarantine, shard maps,
retry and metrics."""
