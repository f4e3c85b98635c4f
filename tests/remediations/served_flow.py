"""The test deployment a remediation runs: ``python -m tests.remediations.served_flow <out_dir>`` serves it
(``flow.serve``) on the Prefect server of ``PREFECT_API_URL``; each run writes its parameters to a file."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from prefect import flow

FLOW_NAME = "remediation-test-retrain"
DEPLOYMENT_NAME = "on-drift"


@flow(name=FLOW_NAME)
def retrain(model: str, organization: str, out_dir: str, reason: str = "drift") -> str:
    """Record the parameters it was started with (the test reads them back)."""
    path = Path(out_dir) / f"{uuid.uuid4().hex}.json"
    path.write_text(json.dumps({"model": model, "organization": organization, "reason": reason}))
    return model


if __name__ == "__main__":
    retrain.serve(name=DEPLOYMENT_NAME)
