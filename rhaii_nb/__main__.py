"""Allow ``python -m rhaii_nb``."""

import sys

from rhaii_nb.cli import main

sys.exit(main())
