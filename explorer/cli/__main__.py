"""`python -m explorer.cli` is the `mirage` command (as `python -m explorer` is)."""
import sys

from explorer.cli import main

sys.exit(main())
