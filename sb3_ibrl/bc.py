"""``python -m sb3_ibrl.bc``: behaviour cloning from the command line (the code lives in :mod:`sb3_ibrl.il.cli`)."""

import sys

from sb3_ibrl.il.cli import main, make_parser, run

__all__ = ["main", "make_parser", "run"]

if __name__ == "__main__":
    sys.exit(main())
