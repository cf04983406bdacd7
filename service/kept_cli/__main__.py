"""`python -m kept_cli`: the same as the `kept` command."""

import sys

from kept_cli.main import main

sys.exit(main())
