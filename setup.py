"""Package layout for setuptools; metadata, dependencies and scripts are in pyproject.toml.

The repository keeps `conf/`, `judges/` and `prompt_suites/` at its top level. The wheel
carries them inside the package as `autojudge._conf`, `autojudge._judges` and
`autojudge._suites` (autojudge/runtime/resources.py finds them there, or in a checkout), so
`pip install .`, `pip install git+...` and `pip install autojudge` work from any folder.
This lives in setup.py rather than pyproject.toml because pyproject's `packages` is either
a fixed list or a discovery that cannot map folders: here packages under src/ are still
discovered, so a new subpackage ships without editing this file.
"""
from pathlib import Path

from setuptools import find_namespace_packages, find_packages, setup

#: package name -> repository folder it is built from
RESOURCES = {"autojudge._conf": "conf", "autojudge._judges": "judges",
             "autojudge._suites": "prompt_suites"}
#: the data files that ship from each of those folders (no __pycache__, no droppings)
DATA = ["*.yaml", "*.yml", "*.json", "*.jsonl", "*.tsv", "*.csv", "*.md", "*.txt",
        "*.png", "*.jpg", "*.jpeg", "*.webp"]


def resource_packages() -> list[str]:
    """Each resource folder and its subfolders (conf/model -> autojudge._conf.model) as
    packages: setuptools copies data per package and warns about unlisted subfolders."""
    here = Path(__file__).resolve().parent
    names = []
    for name, folder in RESOURCES.items():
        # conf/local/ is one machine's own settings (git-ignored): never in a wheel
        subs = find_namespace_packages(str(here / folder),
                                       exclude=["*__pycache__*", "local", "local.*"])
        names += [name, *(f"{name}.{sub}" for sub in subs)]
    return names


PACKAGES = resource_packages()

setup(
    packages=[*find_packages("src"), *PACKAGES],
    package_dir={"": "src", **RESOURCES},
    package_data={"autojudge": ["py.typed"],
                  "autojudge.results": ["leaderboard.schema.json"],
                  "autojudge.arena": ["static/*.html", "static/*.js", "static/*.css"],
                  **{name: DATA for name in PACKAGES}},
)
