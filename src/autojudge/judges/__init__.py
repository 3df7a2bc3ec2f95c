"""Judges: images -> scores (pointwise) or pairs -> verdicts (pairwise), plus wrappers."""
