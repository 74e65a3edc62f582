"""The operator command-line tool: outcomes, history, dead-letter redrive, retries, exports."""
