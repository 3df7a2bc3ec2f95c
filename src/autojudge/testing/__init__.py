"""Test doubles that speak real protocols (a fal-compatible queue server), for tests,
benchmarks and dry runs without an account."""
