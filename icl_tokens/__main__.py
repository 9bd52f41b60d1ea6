"""``python -m icl_tokens``: see :mod:`icl_tokens.cli`."""

import sys

from .cli import main

sys.exit(main())
