"""More than one configuration: model variants inside one run and the objective a
Hydra sweeper optimises (variants), finished runs and multirun jobs on disk (jobs), and
pooling finished runs into one board (pool, pool_jobs).
"""
