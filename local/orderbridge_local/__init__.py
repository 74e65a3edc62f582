"""Run orderbridge on one machine: moto for AWS, sandboxes for providers, the real handlers."""

import os

from orderbridge.constants import SERVICE_NAME

# Powertools' child loggers (`Logger(child=True)` at module level) take the service name from the
# environment when their module is imported. Lambda sets it (template.yaml Globals) before any
# import; the local run imports the core before it starts, so it sets it first, else those
# loggers hang off "service_undefined" and their lines lose the JSON handler and DEBUG level.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", SERVICE_NAME)
