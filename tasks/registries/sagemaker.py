"""SageMaker: model package groups and their versioned packages (the registry), models, endpoints.

Registering creates a versioned model package in a group (the group first if missing) and, given
an execution role, a SageMaker model built from that package, ready for an endpoint. Endpoints
report their status, their production variants (model, version, traffic weight) and the last hour
of CloudWatch invocation, latency and error metrics.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError
from botocore.retries.standard import ThrottledRetryableChecker
from prefect_aws import AwsCredentials

from blocks.aws import cloudwatch_client, sagemaker_client
from tasks.registries.base import EndpointInfo, ModelVersionInfo, RegistryError, RegistryTimeout, platform_error
from tasks.upstream_errors import aws_error, bounded

# AWS answers throttling with a 400; these codes (botocore's own list) are worth another attempt.
THROTTLING_CODES = frozenset(ThrottledRetryableChecker._THROTTLED_ERROR_CODES)

METRICS = {  # our name -> (CloudWatch metric, statistic)
    "invocations": ("Invocations", "Sum"),
    "model_latency_us_avg": ("ModelLatency", "Average"),
    "invocation_4xx_errors": ("Invocation4XXErrors", "Sum"),
    "invocation_5xx_errors": ("Invocation5XXErrors", "Sum"),
}


@contextmanager
def _platform_errors() -> Iterator[None]:
    """Turn botocore's exceptions into ``RegistryError`` carrying AWS's error code and message."""
    try:
        yield
    except (ConnectTimeoutError, ReadTimeoutError) as error:
        raise RegistryTimeout(f"SageMaker did not answer in time: {bounded(error)}") from error
    except ClientError as error:
        raise platform_error(_status(error))(f"SageMaker: {aws_error(error)}") from error
    except BotoCoreError as error:
        raise RegistryError(f"SageMaker: {bounded(error)}") from error


def _status(error: ClientError) -> int | None:
    """The HTTP status of AWS's answer, ``None`` for throttling (which AWS answers with a 400)."""
    if error.response.get("Error", {}).get("Code") in THROTTLING_CODES:
        return None
    return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _paginate(call: Any, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = call(**kwargs)
        items.extend(page.get(key, []))
        if not page.get("NextToken"):
            return items
        kwargs["NextToken"] = page["NextToken"]


def _package_info(package: dict[str, Any], group: str, endpoints: list[str]) -> ModelVersionInfo:
    return ModelVersionInfo(
        name=group,
        version=str(package.get("ModelPackageVersion")),
        external_id=package["ModelPackageArn"],
        source=None,
        status=package.get("ModelApprovalStatus") or package.get("ModelPackageStatus"),
        created_at=package.get("CreationTime"),
        endpoints=endpoints,
    )


class SagemakerRegistry:
    """The SageMaker connector (see ``tasks.registries.base.ModelRegistry``)."""

    def __init__(self, credentials: AwsCredentials) -> None:
        self._region = credentials.region_name
        self._sagemaker = sagemaker_client(credentials)
        self._cloudwatch = cloudwatch_client(credentials)

    @classmethod
    def from_block(cls, block: AwsCredentials, config: dict[str, Any]) -> SagemakerRegistry:
        return cls(block)

    def test_connection(self) -> str:
        with _platform_errors():
            groups = self._sagemaker.list_model_package_groups(MaxResults=10)["ModelPackageGroupSummaryList"]
        return f"SageMaker in {self._region} answered: {len(groups)} model package group(s) on the first page"

    # -- reads --------------------------------------------------------------------------------

    def _endpoint_models(self) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
        """Every endpoint described, and model name -> the endpoints serving it."""
        described = []
        serving: dict[str, list[str]] = {}
        for summary in _paginate(self._sagemaker.list_endpoints, "Endpoints"):
            endpoint = self._sagemaker.describe_endpoint(EndpointName=summary["EndpointName"])
            config = self._sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
            endpoint["ConfigVariants"] = config.get("ProductionVariants", [])
            described.append(endpoint)
            for variant in endpoint["ConfigVariants"]:
                serving.setdefault(variant["ModelName"], []).append(endpoint["EndpointName"])
        return described, serving

    def _model_packages(self) -> dict[str, str]:
        """Model name -> the model package ARN its primary container was built from (if any)."""
        packages = {}
        for summary in _paginate(self._sagemaker.list_models, "Models"):
            model = self._sagemaker.describe_model(ModelName=summary["ModelName"])
            container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
            if container.get("ModelPackageName"):
                packages[model["ModelName"]] = container["ModelPackageName"]
        return packages

    def list_models(self) -> list[ModelVersionInfo]:
        with _platform_errors():
            _, serving = self._endpoint_models()
            model_packages = self._model_packages()
            endpoints_by_package: dict[str, list[str]] = {}
            for model_name, package_arn in model_packages.items():
                endpoints_by_package.setdefault(package_arn, []).extend(serving.get(model_name, []))
            items = []
            groups = _paginate(self._sagemaker.list_model_package_groups, "ModelPackageGroupSummaryList")
            for group in groups:
                name = group["ModelPackageGroupName"]
                for package in self._packages(name):
                    arn = package["ModelPackageArn"]
                    items.append(_package_info(package, name, endpoints_by_package.get(arn, [])))
            for model in _paginate(self._sagemaker.list_models, "Models"):
                items.append(
                    ModelVersionInfo(
                        name=model["ModelName"],
                        version=None,
                        external_id=model["ModelArn"],
                        source=model_packages.get(model["ModelName"]),
                        status=None,
                        created_at=model.get("CreationTime"),
                        endpoints=serving.get(model["ModelName"], []),
                    )
                )
        return items

    def _packages(self, group: str) -> list[dict[str, Any]]:
        return _paginate(self._sagemaker.list_model_packages, "ModelPackageSummaryList", ModelPackageGroupName=group)

    def list_versions(self, name: str) -> list[ModelVersionInfo]:
        with _platform_errors():
            try:
                packages = self._packages(name)
            except ClientError as error:
                if "does not exist" in str(error):
                    return []
                raise
        return [_package_info(package, name, []) for package in packages]

    # -- writes -------------------------------------------------------------------------------

    def _ensure_group(self, group: str, description: str | None) -> None:
        try:
            self._sagemaker.describe_model_package_group(ModelPackageGroupName=group)
        except ClientError as error:
            if "does not exist" not in str(error):
                raise
            self._sagemaker.create_model_package_group(
                ModelPackageGroupName=group, ModelPackageGroupDescription=description or group
            )

    def register_model(self, request: dict[str, Any]) -> ModelVersionInfo:
        group = request["model_package_group"]
        tags = [{"Key": key, "Value": value} for key, value in (request.get("tags") or {}).items()]
        tags.append({"Key": "modelpulse.name", "Value": request["name"]})
        with _platform_errors():
            self._ensure_group(group, request.get("description"))
            created = self._sagemaker.create_model_package(
                ModelPackageGroupName=group,
                ModelPackageDescription=request.get("description") or request["name"],
                InferenceSpecification={
                    "Containers": [{"Image": request["image_uri"], "ModelDataUrl": request["model_data_url"]}],
                    "SupportedContentTypes": ["application/json"],
                    "SupportedResponseMIMETypes": ["application/json"],
                },
                ModelApprovalStatus="PendingManualApproval",
                Tags=tags,
                # SageMaker's idempotency token: a retried call returns the package it created.
                ClientToken=request["registration_id"][:128],
            )
            package = self._sagemaker.describe_model_package(ModelPackageName=created["ModelPackageArn"])
            if request.get("execution_role_arn"):
                self._create_model(request["name"], package["ModelPackageArn"], request["execution_role_arn"])
        return _package_info(package, group, [])

    def _create_model(self, name: str, package_arn: str, role_arn: str) -> None:
        """A deployable SageMaker model built from the package (kept if a retry finds it already there)."""
        try:
            self._sagemaker.create_model(
                ModelName=name, PrimaryContainer={"ModelPackageName": package_arn}, ExecutionRoleArn=role_arn
            )
        except ClientError as error:
            if "already exist" not in str(error).lower():
                raise

    # -- endpoints ----------------------------------------------------------------------------

    def _metrics(self, endpoint: str, variants: list[str]) -> dict[str, Any]:
        end = datetime.now(UTC)
        queries = []
        for index, (_key, (metric, stat)) in enumerate(METRICS.items()):
            for variant_index, variant in enumerate(variants):
                queries.append(
                    {
                        "Id": f"m{index}v{variant_index}",
                        "MetricStat": {
                            "Metric": {
                                "Namespace": "AWS/SageMaker",
                                "MetricName": metric,
                                "Dimensions": [
                                    {"Name": "EndpointName", "Value": endpoint},
                                    {"Name": "VariantName", "Value": variant},
                                ],
                            },
                            "Period": 3600,
                            "Stat": stat,
                        },
                    }
                )
        if not queries:
            return {}
        answer = self._cloudwatch.get_metric_data(
            MetricDataQueries=queries, StartTime=end - timedelta(hours=1), EndTime=end
        )
        values = {result["Id"]: result.get("Values", []) for result in answer["MetricDataResults"]}
        metrics: dict[str, Any] = {}
        for index, (key, (_metric, stat)) in enumerate(METRICS.items()):
            points = [v for i in range(len(variants)) for v in values.get(f"m{index}v{i}", [])]
            if not points:
                metrics[key] = None
            elif stat == "Sum":
                metrics[key] = sum(points)
            else:
                metrics[key] = sum(points) / len(points)
        metrics["window_seconds"] = 3600
        return metrics

    def list_endpoints(self) -> list[EndpointInfo]:
        with _platform_errors():
            described, _ = self._endpoint_models()
            model_packages = self._model_packages()
            endpoints = []
            for endpoint in described:
                weights = {
                    v["VariantName"]: v.get("CurrentWeight", v.get("DesiredWeight"))
                    for v in endpoint.get("ProductionVariants", [])
                }
                configured = {v["VariantName"]: v for v in endpoint["ConfigVariants"]}
                total = sum(w or 0 for w in weights.values()) or sum(
                    v.get("InitialVariantWeight", 1) for v in configured.values()
                )
                deployments = []
                for variant_name, variant in configured.items():
                    weight = weights.get(variant_name, variant.get("InitialVariantWeight", 1)) or 0
                    package = model_packages.get(variant["ModelName"])
                    deployments.append(
                        {
                            "variant": variant_name,
                            "model": variant["ModelName"],
                            "model_version": package.rsplit("/", 1)[-1] if package else None,
                            "model_package_arn": package,
                            "traffic": round(100 * weight / total, 2) if total else 0,
                        }
                    )
                endpoints.append(
                    EndpointInfo(
                        name=endpoint["EndpointName"],
                        status=endpoint["EndpointStatus"],
                        external_id=endpoint["EndpointArn"],
                        deployments=deployments,
                        metrics=self._metrics(endpoint["EndpointName"], list(configured)),
                        created_at=endpoint.get("CreationTime"),
                        updated_at=endpoint.get("LastModifiedTime"),
                    )
                )
        return endpoints
