"""deploy/ecs checked offline: the task and service definitions against botocore's model of
RegisterTaskDefinition and CreateService (enums included), the CloudFormation template with
cfn-lint, and what the seed and users rely on in both."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.aws import cfn_lint, ecs_request_problems
from tests.support.servers import REPO_ROOT

ECS = REPO_ROOT / "deploy" / "ecs"
TASKS = sorted(ECS.glob("task-definition-*.json"))
SERVICES = sorted(ECS.glob("service-*.json"))
TEMPLATE = ECS / "stead.cfn.yaml"
# Fargate stops a task at most this long after SIGTERM.
FARGATE_MAX_STOP_SECONDS = 120


@pytest.mark.parametrize("path", TASKS, ids=lambda p: p.stem)
def test_task_definitions_are_valid_requests(path: Path) -> None:
    done = ecs_request_problems("RegisterTaskDefinition", path)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: p.stem)
def test_service_definitions_are_valid_requests(path: Path) -> None:
    done = ecs_request_problems("CreateService", path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_checker_refuses_a_bad_enum_and_an_unknown_key(tmp_path: Path) -> None:
    task = json.loads((ECS / "task-definition-api.json").read_text())
    task["networkMode"] = "overlay"
    task["containerDefinitions"][1]["healthcheck"] = {}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(task))
    done = ecs_request_problems("RegisterTaskDefinition", bad)
    assert done.returncode == 1
    assert "'overlay' is not one of" in done.stdout and "healthcheck" in done.stdout


def _task(name: str) -> dict[str, Any]:
    return dict(json.loads((ECS / f"task-definition-{name}.json").read_text()))


@pytest.mark.parametrize("name", ["api", "worker"])
def test_each_task_migrates_first_and_reads_its_secrets_from_secrets_manager(name: str) -> None:
    task = _task(name)
    assert task["requiresCompatibilities"] == ["FARGATE"] and task["networkMode"] == "awsvpc"
    assert (task["cpu"], task["memory"]) == ("1024", "2048")  # the seed's
    migrate, app = task["containerDefinitions"]
    assert migrate["command"] == ["migrate"] and migrate["essential"] is False
    assert app["dependsOn"] == [{"containerName": "migrate", "condition": "SUCCESS"}]
    for container in (migrate, app):
        secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
        assert set(secrets) == {"POSTGRES_URL", "REDIS_URL"}
        assert all(arn.startswith("arn:aws:secretsmanager:") for arn in secrets.values())
        assert not {e["name"] for e in container["environment"]} & set(secrets)
        assert container["logConfiguration"]["logDriver"] == "awslogs"
        assert container["readonlyRootFilesystem"] is True and container["user"] == "10001"
    assert app["healthCheck"]["command"][:3] == ["CMD", "stead", "healthcheck"]
    grace = int(
        next(
            e["value"]
            for e in app["environment"]
            if e["name"] == "BG_JOB_SHUTDOWN_GRACE_PERIOD_SECS"
        )
    )
    assert grace < app["stopTimeout"] <= FARGATE_MAX_STOP_SECONDS


def test_only_the_api_sits_behind_the_load_balancer() -> None:
    api = json.loads((ECS / "service-api.json").read_text())
    worker = json.loads((ECS / "service-worker.json").read_text())
    assert api["loadBalancers"][0]["containerPort"] == 8000
    assert "loadBalancers" not in worker
    api_env = {
        e["name"]: e["value"] for e in _task("api")["containerDefinitions"][1]["environment"]
    }
    assert api_env["N_JOBS_PER_WORKER"] == "0"


def test_the_env_names_are_the_ones_stead_reads() -> None:
    source = "\n".join(path.read_text() for path in (REPO_ROOT / "src" / "stead").rglob("*.py"))
    for path in TASKS:
        for container in json.loads(path.read_text())["containerDefinitions"]:
            for entry in container["environment"] + container["secrets"]:
                assert f'"{entry["name"]}"' in source, entry["name"]


def test_cfn_lint_passes() -> None:
    done = cfn_lint(TEMPLATE)
    assert done.returncode == 0, done.stdout + done.stderr


class _CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (`!Ref X` becomes `{"Ref": "X"}`)."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        return {name: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    return {name: loader.construct_mapping(node, deep=True)}


_CloudFormationLoader.add_multi_constructor("!", _tag)


def _resources() -> dict[str, Any]:
    template = yaml.load(TEMPLATE.read_text(), Loader=_CloudFormationLoader)
    return dict(template["Resources"])


def test_only_the_load_balancer_reaches_the_api_and_only_the_tasks_reach_the_stores() -> None:
    resources = _resources()

    def ingress(name: str) -> list[tuple[int, Any]]:
        rules = resources[name]["Properties"]["SecurityGroupIngress"]
        return [
            (rule["FromPort"], rule.get("SourceSecurityGroupId") or rule.get("CidrIp"))
            for rule in rules
        ]

    assert ingress("TaskSecurityGroup") == [(8000, {"Ref": "LoadBalancerSecurityGroup"})]
    assert ingress("DatabaseSecurityGroup") == [(5432, {"Ref": "TaskSecurityGroup"})]
    assert ingress("RedisSecurityGroup") == [(6379, {"Ref": "TaskSecurityGroup"})]
    assert resources["TargetGroup"]["Properties"]["HealthCheckPath"] == "/ok"
    assert resources["Database"]["Condition"] == "CreateDatabase"
    assert resources["Redis"]["Condition"] == "CreateRedis"
    assert re.fullmatch(r"15\.\d+", resources["Database"]["Properties"]["EngineVersion"])
    assert resources["Redis"]["Properties"]["EngineVersion"].startswith("7.")
    kinds = {resource["Type"] for resource in resources.values()}
    assert {"AWS::ApplicationAutoScaling::ScalingPolicy", "AWS::Logs::LogGroup"} <= kinds
