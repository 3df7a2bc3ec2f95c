"""`python -m autojudge.rate`: an alias of `autojudge rate`; the command is
autojudge.cli.rate (docs/cli.md)."""
import sys

from autojudge.cli.rate import main

if __name__ == "__main__":
    sys.exit(main())
