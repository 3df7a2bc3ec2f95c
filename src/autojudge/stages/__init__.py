"""Pipeline stages: generate -> judge (battles) -> rate -> report."""
