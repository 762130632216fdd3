"""``python -m facetpot.cli ...`` = ``facet ...``."""

import sys

from .main import main

sys.exit(main())
