"""Benchmarks: measured side by side with references (`python -m benchmarks.<name>`)."""
