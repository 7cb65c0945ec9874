"""``python -m optlab.grading``: the same as the ``optlab-grade`` command."""

import sys

from .cli import main

sys.exit(main())
