"""Where autojudge's shipped resources live: the Hydra config folder, the judge cards and
the prompt suites. The one place that knows; everything else imports from here.

The repository keeps them at its top level (`conf/`, `judges/`, `prompt_suites/`). A wheel
carries them inside the package as `autojudge/_conf`, `autojudge/_judges` and
`autojudge/_suites` (pyproject.toml maps the folders there), so an installed autojudge
finds them from any working directory. A source checkout (editable install, or `src/` on
the path) has no such folders inside the package and uses the repository's own.

Example:
    >>> from autojudge.runtime.resources import CONF_DIR, shipped
    >>> (CONF_DIR / "config.yaml").is_file()
    True
    >>> shipped("prompt_suites/starter.yaml").name
    'starter.yaml'
"""
from __future__ import annotations

from pathlib import Path

#: the installed package (this file is autojudge/runtime/resources.py)
PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: the repository root when running from a checkout (src/autojudge/ -> ../..)
SOURCE_ROOT = PACKAGE_DIR.parents[1]

#: repository folder -> the package folder a wheel carries it in
LAYOUT = {"conf": "_conf", "judges": "_judges", "prompt_suites": "_suites"}


def resource_dir(folder: str) -> Path:
    """The shipped copy of a top-level repository folder ("conf", "judges",
    "prompt_suites"): inside the installed package if it is there, else in the checkout.

    When neither exists (a broken install) the in-package path is returned, so the error
    that follows names where the files were expected; see `missing()`.
    """
    installed = PACKAGE_DIR / LAYOUT[folder]
    if installed.is_dir():
        return installed
    checkout = SOURCE_ROOT / folder
    return checkout if checkout.is_dir() else installed


CONF_DIR = resource_dir("conf")
JUDGES_DIR = resource_dir("judges")
SUITES_DIR = resource_dir("prompt_suites")


def missing() -> str | None:
    """One line naming a shipped folder that is not there (a broken install), or None."""
    for folder, path in (("conf", CONF_DIR), ("judges", JUDGES_DIR),
                         ("prompt_suites", SUITES_DIR)):
        if not path.is_dir():
            return (f"autojudge's shipped {folder}/ folder is missing (looked in {path} and "
                    f"{SOURCE_ROOT / folder}); reinstall: pip install --force-reinstall autojudge")
    return None


def shipped(relative: str | Path) -> Path | None:
    """The shipped file for a repository-relative path such as `prompt_suites/starter.yaml`
    or `judges/vlm_templates.yaml`, or None when it names no shipped file.

    Config files keep the repository spelling (`suite.path=prompt_suites/starter.yaml`), so
    the same config works from a checkout and from an installed wheel.
    """
    parts = Path(relative).parts
    if not parts or parts[0] not in LAYOUT or Path(relative).is_absolute():
        return None
    candidate = resource_dir(parts[0]).joinpath(*parts[1:])
    return candidate if candidate.exists() else None
