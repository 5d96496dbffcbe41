"""``python -m molgan``."""

import sys

from molgan.cli import main

if __name__ == "__main__":
    sys.exit(main())
