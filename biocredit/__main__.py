"""``python -m biocredit``: the same as the ``biocredit`` command."""

import sys

from biocredit.cli import main

sys.exit(main())
