"""riskmap service: the embedded store, ingest, the FastAPI app and the ``riskmap`` CLI."""
