"""Run orderbridge on one machine: moto for AWS, sandboxes for providers, the real handlers."""
