"""SageMaker integrations reuse ``prefect_aws.AwsCredentials``; this maps our fields onto it."""

from __future__ import annotations

from typing import Any

from prefect_aws import AwsClientParameters, AwsCredentials

# botocore's defaults (60 s connect and read, legacy retries) would hold a synchronous API read far
# past its 30 s budget when the platform is unreachable; our tasks retry on top of this.
CLIENT_CONFIG: dict[str, Any] = {
    "connect_timeout": 5,
    "read_timeout": 20,
    "retries": {"max_attempts": 2, "mode": "standard"},
}


def aws_credentials_from_settings(config: dict[str, Any], credentials: dict[str, Any]) -> AwsCredentials:
    """Build the block from an integration's config (region, endpoint) and credentials."""
    return AwsCredentials(
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
    return {
        "aws_access_key_id": block.aws_access_key_id,
        "aws_secret_access_key": secret.get_secret_value() if secret else None,
        "aws_session_token": token.get_secret_value() if token else None,
    }


def sagemaker_client(block: AwsCredentials) -> Any:
    """A boto3 SageMaker client from the block (region, endpoint URL, timeouts), cached by prefect-aws."""
    return block.get_client("sagemaker")


def cloudwatch_client(block: AwsCredentials) -> Any:
    """A boto3 CloudWatch client from the block, for endpoint invocation and latency metrics."""
    return block.get_client("cloudwatch")
