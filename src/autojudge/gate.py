"""`python -m autojudge.gate`: an alias of `autojudge gate`; the command is
autojudge.cli.gate (docs/cli.md)."""
import sys

from autojudge.cli.gate import main

if __name__ == "__main__":
    sys.exit(main())
