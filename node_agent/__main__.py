"""`python -m node_agent --node-name NAME ...`"""

import sys

from node_agent.lean import skip_kubernetes_package_init

skip_kubernetes_package_init()

from node_agent.cli import main  # noqa: E402 - after the lean import set-up

sys.exit(main())
