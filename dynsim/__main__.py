"""`python -m dynsim ...` (and `torchrun -m dynsim train ...`): the `dynsim` command."""

import sys

from dynsim.cli import main

if __name__ == "__main__":
    sys.exit(main())
