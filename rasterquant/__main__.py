"""``python -m rasterquant``."""

import sys

try:
    from .cli.main import main
except KeyboardInterrupt:  # Ctrl-C while the package is still importing
    sys.exit(130)

sys.exit(main())
