"""The HTTP API: operators' surface over the query layer, the signed-decision service and the
kill switch (FastAPI on uvicorn). Thin: every answer comes from `api.services` and
`store.queries`, which the CLI uses too."""
