"""The Lambda consumers of the order stream and their AWS adapters."""
