"""Request bodies, shaped as the LangSmith Deployments control plane API's; unknown fields are
ignored as the official API does."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Source = Literal["github", "external_docker", "internal_docker", "internal_source"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Secret(_Body):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    value: str


class SecretReference(_Body):
    name: str
    secret_name: str
    secret_key: str


class ListenerConfig(_Body):
    k8s_namespace: str | None = None


class SourceConfig(_Body):
    integration_id: str | None = None
    repo_url: str | None = None
    deployment_type: str | None = None
    build_on_push: bool | None = None
    custom_url: str | None = None
    resource_spec: dict[str, Any] | None = None
    listener_id: str | None = None
    listener_config: ListenerConfig | None = None
    install_command: str | None = None
    build_command: str | None = None


class SourceRevisionConfig(_Body):
    repo_ref: str | None = None
    langgraph_config_path: str | None = None
    image_uri: str | None = None
    source_tarball_path: str | None = None


class DeploymentCreate(_Body):
    name: str = Field(min_length=1, max_length=255)
    source: Source
    source_config: SourceConfig = Field(default_factory=SourceConfig)
    source_revision_config: SourceRevisionConfig = Field(default_factory=SourceRevisionConfig)
    secrets: list[Secret] = Field(default_factory=list)
    secret_references: list[SecretReference] | None = None


class DeploymentPatch(_Body):
    revision_source: Source | None = None
    source_config: SourceConfig | None = None
    source_revision_config: SourceRevisionConfig | None = None
    secrets: list[Secret] | None = None
    secret_references: list[SecretReference] | None = None


class UploadUrlRequest(_Body):
    supports_upload_headers: bool = False


class ComputeConfig(_Body):
    k8s_namespaces: list[str] = Field(default_factory=list)


class ListenerCreate(_Body):
    compute_id: str = Field(min_length=1, max_length=255)
    compute_type: str | None = None
    compute_config: ComputeConfig | None = None
    version: str | None = None


class ListenerPatch(_Body):
    version: str | None = None
    compute_config: ComputeConfig | None = None


class LogQuery(_Body):
    """The legacy log readers' body (POST /v1/projects/.../build_logs, deploy_logs)."""

    order: Literal["asc", "desc"] = "asc"
    limit: int = Field(default=50, ge=1, le=1000)
    offset: str | None = None
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] | None = None
    query: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None


class StatusReport(_Body):
    status: str
    message: str | None = None
    url: str | None = None


class LogLine(_Body):
    message: str
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    timestamp: datetime | None = None


class LogBatch(_Body):
    type: Literal["build", "deploy"]
    lines: list[LogLine] = Field(max_length=1000)


class Heartbeat(_Body):
    version: str | None = None
    backend: str | None = None
    deployments: dict[str, Any] = Field(default_factory=dict)


class ServerReport(_Body):
    name: str = Field(min_length=1, max_length=255)
    url: str
    version: str
    replica: str
    health: dict[str, str]
    queue: dict[str, Any] | None = None


def dumped(model: BaseModel | None) -> dict[str, Any]:
    """A body as the services take it: plain data, fields not given left out."""
    return model.model_dump(exclude_unset=True) if model is not None else {}
