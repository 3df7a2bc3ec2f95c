"""Battle tables as data: the battle log formats (log, arrow), human votes as a judge
(human_votes), and what counts as a model name (names).
"""
