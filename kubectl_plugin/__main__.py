"""`python -m kubectl_plugin ARGS`: the same as `kubectl nodewarden ARGS`."""

import sys

from kubectl_plugin.cli import main

sys.exit(main())
