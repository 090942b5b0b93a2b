"""``python -m sstp_pppd.host undo NAME``: undo everything connection NAME changed."""

import sys

from .hookmain import main

sys.exit(main())
