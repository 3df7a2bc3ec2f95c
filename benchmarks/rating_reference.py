"""The rating code as it was before the scale work (issue 21), read from git, so that the
faster code can be checked to give the same answers (benchmarks/bench_rate_scale.py,
tests/unit/test_rating_scale.py) without a second copy of it in the tree.

`load()` writes the modules of `REFERENCE_COMMIT` into a temporary package
`rating_reference` (their imports of each other renamed, everything else still imported
from autojudge) and puts it on sys.path. It needs a git checkout holding that commit;
`available()` says whether this one does.
"""
from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE_COMMIT = "ba1f85e"  # main before the sparse battle graph and the pairwise screen
MODULES = ("boards", "bootstrap", "bradley_terry", "compare", "gate_paths", "intervals",
           "profile", "structure")
_OWN = re.compile(r"autojudge\.ratings\.(" + "|".join(MODULES) + r")\b")


def _show(module: str) -> str | None:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), "show", f"{REFERENCE_COMMIT}:src/autojudge/ratings/"
             f"{module}.py"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def available() -> bool:
    return _show("structure") is not None


def load() -> None:
    """Make `import rating_reference.<module>` give the reference code."""
    if "rating_reference" in sys.modules and hasattr(sys.modules["rating_reference"],
                                                     "__path__"):
        return
    root = Path(tempfile.mkdtemp(prefix="rating_reference_"))
    package = root / "rating_reference"
    package.mkdir()
    (package / "__init__.py").write_text('"""The rating code at %s."""\n' % REFERENCE_COMMIT)
    for module in MODULES:
        source = _show(module)
        if source is None:
            raise RuntimeError(f"git cannot show {REFERENCE_COMMIT}: this is not a full "
                               "checkout of the repository")
        (package / f"{module}.py").write_text(_OWN.sub(r"rating_reference.\1", source))
    sys.modules.pop("rating_reference", None)
    sys.path.insert(0, str(root))
