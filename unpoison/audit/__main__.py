"""``python -m unpoison.audit``: the ``unpoison-audit`` command."""

import sys

from unpoison.audit.cli import main

sys.exit(main())
