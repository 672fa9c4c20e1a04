"""``python -m dgn_tools.cli``: the ``dgn`` command."""

import sys

from . import main

sys.exit(main())
