"""`python -m teamc`: the same as the `teamc` command."""

import sys

from .cli import main

sys.exit(main())
