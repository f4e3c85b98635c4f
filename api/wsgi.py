"""WSGI entry point for gunicorn: ``gunicorn api.wsgi:app``."""

import os

# A request that needs the Prefect server while it is down answers 503 within seconds: the Prefect
# client's own default (5 retries with exponential backoff, 60 s per request) would hold the request
# for a minute and then be killed by gunicorn's worker timeout. Set before Prefect is imported.
os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", "1")
os.environ.setdefault("PREFECT_API_REQUEST_TIMEOUT", "10")

from api import create_app  # noqa: E402

app = create_app()
