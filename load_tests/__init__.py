"""Load tests and benchmarks (`make bench`)."""
