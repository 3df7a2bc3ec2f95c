"""`python -m autojudge.validate`: an alias of `autojudge validate`; the command is
autojudge.cli.validate (docs/cli.md)."""
import sys

from autojudge.cli.validate import main

if __name__ == "__main__":
    sys.exit(main())
