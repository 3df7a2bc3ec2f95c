"""Generators: requests -> encoded images (+ latency, cost, typed failures)."""
