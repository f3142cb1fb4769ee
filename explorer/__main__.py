"""`python -m explorer` is the `mirage` command."""
import sys

from explorer.cli import main

sys.exit(main())
