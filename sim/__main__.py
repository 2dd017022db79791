"""`python -m sim serve ...` — see sim/cli.py."""

from .cli import main

raise SystemExit(main())
