"""``python -m fastgan``: the same as the ``fastgan`` command."""

import sys

from fastgan.cli.main import main

sys.exit(main())
