"""One egress policy for every connection to a URL a user set (see ``policy`` for the rule).

Where each client meets it:

=====================  ===============================================  ==========================
client                 hook                                             module
=====================  ===============================================  ==========================
webhooks (httpx)       async network backend of the transport           ``httpx_transports``
Splunk HEC (httpx)     sync network backend of the transport            ``httpx_transports``
Elasticsearch          the node class's urllib3 pool connection class   ``urllib3_pools``
Datadog                the REST client's urllib3 pool manager           ``urllib3_pools``
SageMaker (boto3)      the client's urllib3 pool classes                ``urllib3_pools``
MLflow (requests)      the adapters of MLflow's request sessions         ``urllib3_pools``
Vertex AI (REST)       the adapters of the authorized session and of
                       its token requests                               ``urllib3_pools``
=====================  ===============================================  ==========================

Each resolves the host itself at connect time and connects to an address it checked, so DNS
rebinding is covered for all of them.

The clients tenants share keep no cookies: what one tenant's receiver sets never rides on another
tenant's request. The webhook sender's per-origin pools have no cookie jar; MLflow's per-process
requests session refuses every cookie (``cookies``).

``urllib3_pools`` is not imported here: the blocks that use it import it themselves
(``from blocks.egress.urllib3_pools import guard_pool``), so the webhook flows and Splunk exports,
which speak httpx only, do not load urllib3 at start.
"""

from blocks.egress.httpx_transports import (
    GuardedSyncTransport,
    GuardedTransport,
    HostNotResolved,
    TargetRefused,
)
from blocks.egress.policy import EgressPolicy, EgressRefused, UnsafeUrl, check_url, egress_policy, refusal_reason

__all__ = [
    "EgressPolicy",
    "EgressRefused",
    "GuardedSyncTransport",
    "GuardedTransport",
    "HostNotResolved",
    "TargetRefused",
    "UnsafeUrl",
    "check_url",
    "egress_policy",
    "refusal_reason",
]
