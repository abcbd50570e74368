"""The command line: `main` parses and dispatches, `commands/` holds one module per sub-command."""
