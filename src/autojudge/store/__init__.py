"""The content-addressed store: image blobs (blobs) and the SQLite index of generations
and scores (index), its check and repair (check) and salvage of a damaged index
(salvage). `python -m autojudge.store check|repair` runs `autojudge.cli.store`.
"""
