"""What every part of a run leans on: where models run (devices), where weights come
from (weights), optional extras, shipped resources, atomic file writes and progress bars.
"""
