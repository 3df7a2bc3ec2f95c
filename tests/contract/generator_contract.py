"""The generator contract mixin, shipped in `autojudge.testing` (so a plugin author outside
this repository runs the same tests); imported here by plain name for the contract tests."""
from autojudge.testing.generator_contract import (DEFAULT_FORBIDDEN_IMPORTS,  # noqa: F401
                                                  GeneratorContract, PluginContract,
                                                  image_digest, output_key, run_isolated)
