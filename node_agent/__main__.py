"""`python -m node_agent --node-name NAME ...`"""

import sys

from node_agent.cli import main

sys.exit(main())
