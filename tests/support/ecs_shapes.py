"""Validate an ECS request body (JSON file) against botocore's model of the operation, offline:
`python ecs_shapes.py RegisterTaskDefinition FILE`. botocore's validator checks keys, types and
required members but not enums, so every string with an enum is checked here too. Prints one
problem per line; exits 1 when there is any. Runs in its own venv (tests/support/aws.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import botocore.session
from botocore.validate import ParamValidator


def enum_problems(shape: Any, value: Any, path: str) -> list[str]:
    if shape.type_name == "structure" and isinstance(value, dict):
        return [
            problem
            for key, item in value.items()
            if key in shape.members
            for problem in enum_problems(shape.members[key], item, f"{path}.{key}")
        ]
    if shape.type_name == "list" and isinstance(value, list):
        return [
            p
            for i, item in enumerate(value)
            for p in enum_problems(shape.member, item, f"{path}[{i}]")
        ]
    if shape.type_name == "string" and shape.enum and value not in shape.enum:
        return [f"{path}: {value!r} is not one of {shape.enum}"]
    return []


def main(operation: str, file: str) -> int:
    model = botocore.session.get_session().get_service_model("ecs").operation_model(operation)
    body = json.loads(Path(file).read_text())
    report = ParamValidator().validate(body, model.input_shape)
    problems = [report.generate_report()] if report.has_errors() else []
    problems += enum_problems(model.input_shape, body, operation)
    print("\n".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2]))
