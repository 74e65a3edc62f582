"""`python -m orderbridge_sandboxes --config config/sandboxes.json --port 4010`."""

from orderbridge_sandboxes.server import main

raise SystemExit(main())
