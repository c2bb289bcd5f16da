"""convo-bridge ingest side: receive, verify, normalize and queue webhooks."""
