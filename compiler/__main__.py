"""`python -m compiler`: the same as the `teamc` command."""

import sys

from .cli import main

sys.exit(main())
