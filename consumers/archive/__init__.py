"""The archiver: every accepted event, kept immutably in S3 (the batch layer's master dataset)."""
