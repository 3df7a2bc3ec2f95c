"""`python -m autojudge.compare`: an alias of `autojudge compare`; the command is
autojudge.cli.compare (docs/cli.md)."""
import sys

from autojudge.cli.compare import main

if __name__ == "__main__":
    sys.exit(main())
