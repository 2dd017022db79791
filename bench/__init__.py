"""Benchmarks: speed and memory targets live here, never in timed unit tests.
`python -m bench [NAME ...]` runs them and records results under bench/results/."""
