"""Cron-triggered imports: orders pulled from files in S3 and from storefront feeds.

Modules: `config` (the `imports` section of the configuration document), `mapping` (rows to
canonical orders), `readers` (CSV / JSON Lines streams with byte positions, grouped into orders),
`state` (leases, checkpoints, processed files and the ledger of enqueued orders in the import state
table), `enqueue` (known-order checks and SQS batches), `feed` (the HTTP "orders since" client),
`summary` (per-run summaries) and `service` (a run, start to finish).

Nothing is imported here, so that `orderbridge.models.config` can import `imports.config` freely.
"""
