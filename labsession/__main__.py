"""``python -m labsession …``: the same as the ``labsession`` command."""

import sys

from .cli import main

sys.exit(main())
