"""`python -m autojudge.store`: an alias of `autojudge store`; the command is
autojudge.cli.store (docs/cli.md)."""
import sys

from autojudge.cli.store import main

if __name__ == "__main__":
    sys.exit(main())
