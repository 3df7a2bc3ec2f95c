"""The judge contract mixins, shipped in `autojudge.testing` (so a plugin author outside
this repository runs the same tests); imported here by plain name for the contract tests."""
from autojudge.testing.judge_contract import (PairwiseJudgeContract,  # noqa: F401
                                              PointwiseJudgeContract, runner_for, score_key,
                                              verdict_key)
