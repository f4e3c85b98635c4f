"""SageMaker integrations reuse ``prefect_aws.AwsCredentials``; this maps our fields onto it.

``SagemakerConnection`` is ``AwsCredentials`` plus the one secret AWS does not hold for us: the key
that EventBridge's API destination sends with each pushed event. Documents saved before it existed
are plain ``AwsCredentials`` and still load (``blocks.connections``).
"""

from __future__ import annotations

from typing import Any

from prefect_aws import AwsClientParameters, AwsCredentials
from pydantic import Field, SecretStr

from blocks.egress.urllib3_pools import guard_pool_manager

# botocore's defaults (60 s connect and read, legacy retries) would hold a synchronous API read far
# past its 30 s budget when the platform is unreachable; our tasks retry on top of this.
CLIENT_CONFIG: dict[str, Any] = {
    "connect_timeout": 5,
    "read_timeout": 20,
    "retries": {"max_attempts": 2, "mode": "standard"},
}


class SagemakerConnection(AwsCredentials):
    """AWS credentials of a SageMaker integration and the key of its pushed EventBridge events.

    Example:
        ```python
        from blocks.aws import SagemakerConnection
        block = SagemakerConnection.load("modelpulse-integration-int-01...")
        block.get_client("sagemaker").list_model_package_groups()
        ```
    """

    _block_type_name = "ModelPulse SageMaker Connection"
    _block_type_slug = "modelpulse-sagemaker-connection"
    _description = "AWS credentials of a SageMaker integration, and the API key its EventBridge events carry."

    events_api_key: SecretStr | None = Field(
        default=None,
        title="Events API key",
        description="The value of the EventBridge connection's API-key header on pushed events.",
    )


def aws_credentials_from_settings(config: dict[str, Any], credentials: dict[str, Any]) -> SagemakerConnection:
    """Build the block from an integration's config (region, endpoint) and credentials."""
    return SagemakerConnection(
        events_api_key=credentials.get("events_api_key"),
        aws_access_key_id=credentials["aws_access_key_id"],
        aws_secret_access_key=credentials["aws_secret_access_key"],
        aws_session_token=credentials.get("aws_session_token"),
        region_name=config["region_name"],
        aws_client_parameters=AwsClientParameters(
            endpoint_url=config.get("endpoint_url"), config=CLIENT_CONFIG
        ),
    )


def aws_credentials_values(block: AwsCredentials) -> dict[str, Any]:
    secret = block.aws_secret_access_key
    token = block.aws_session_token
    events_key = getattr(block, "events_api_key", None)  # a legacy AwsCredentials document has none
    return {
        "aws_access_key_id": block.aws_access_key_id,
        "aws_secret_access_key": secret.get_secret_value() if secret else None,
        "aws_session_token": token.get_secret_value() if token else None,
        "events_api_key": events_key.get_secret_value() if events_key else None,
    }


def sagemaker_client(block: AwsCredentials) -> Any:
    """A boto3 SageMaker client from the block (region, endpoint URL, timeouts), cached by prefect-aws."""
    return _guarded(block.get_client("sagemaker"))


def cloudwatch_client(block: AwsCredentials) -> Any:
    """A boto3 CloudWatch client from the block, for endpoint invocation and latency metrics."""
    return _guarded(block.get_client("cloudwatch"))


def _guarded(client: Any) -> Any:
    """The client, its connections checked against the egress policy: botocore's session shares one
    scheme -> pool class table between its pool managers (proxies included), so guarding the table
    guards every pool it opens from now on (idempotent; prefect-aws hands back the same client)."""
    session = client._endpoint.http_session
    guard_pool_manager(session._manager, session._pool_classes_by_scheme)
    return client
