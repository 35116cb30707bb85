"""Loading projects: MLproject files, directory conventions, environment files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects.env_files import CondaEnv, DockerEnv, PythonEnv
from mlgrid.projects.spec import load_project

from .helpers import write


def test_mlproject_with_entry_points_types_and_defaults(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "MLproject": """
                name: demo
                python_env: env/python_env.yaml
                entry_points:
                  main:
                    parameters:
                      data_file: path
                      regularization: {type: float, default: 0.1}
                      flag: {default: true}
                    command: "python train.py -r {regularization} {data_file}"
                  validate:
                    command: "python validate.py"
            """,
            "env/python_env.yaml": """
                python: "3.11"
                build_dependencies: [pip]
                dependencies: [requests==2.31.0]
            """,
        },
    )
    project = load_project(tmp_path)
    assert project.name == "demo"
    assert project.env == PythonEnv(
        python="3.11",
        build_dependencies=("pip",),
        dependencies=("requests==2.31.0",),
        path=(tmp_path / "env/python_env.yaml").resolve(),
    )
    main = project.get_entry_point("main")
    assert main.command == "python train.py -r {regularization} {data_file}"
    assert {n: (p.type, p.default) for n, p in main.parameters.items()} == {
        "data_file": ("path", None),
        "regularization": ("float", "0.1"),
        "flag": ("string", "true"),
    }
    assert project.get_entry_point("validate").parameters == {}


@pytest.mark.parametrize("name", ["mlproject", "MLProject", "mlPROJECT"])
def test_mlproject_file_name_is_case_insensitive(tmp_path: Path, name: str) -> None:
    write(tmp_path, {name: "name: cased\nentry_points: {main: {command: 'echo hi'}}\n"})
    project = load_project(tmp_path)
    assert project.name == "cased"
    assert project.get_entry_point("main").command == "echo hi"


def test_directory_conventions_without_mlproject(tmp_path: Path) -> None:
    project_dir = write(
        tmp_path / "my-project",
        {
            "train.py": "print(1)\n",
            "scripts/run.sh": "echo 1\n",
            "conda.yaml": "dependencies: [python=3.10, {pip: [six]}]\n",
        },
    )
    project = load_project(project_dir)
    assert project.name == "my-project"
    assert isinstance(project.env, CondaEnv)
    assert project.env.python == "3.10"
    assert project.env.pip_dependencies == ("six",)
    assert project.get_entry_point("train.py").command == "python train.py"
    assert project.get_entry_point("scripts/run.sh").command == "bash scripts/run.sh"
    with pytest.raises(InvalidParameterValue, match=r"entry point 'main' not found"):
        project.get_entry_point("main")


def test_python_env_yaml_wins_over_conda_yaml(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"python_env.yaml": 'python: "3.11.7"\n', "conda.yaml": "dependencies: [python=3.9]\n"},
    )
    project = load_project(tmp_path)
    assert isinstance(project.env, PythonEnv)
    assert project.env.python == "3.11.7"


def test_script_entry_point_must_exist_inside_the_project(tmp_path: Path) -> None:
    write(tmp_path, {"a.py": "", "MLproject": "name: x\n"})
    project = load_project(tmp_path)
    with pytest.raises(InvalidParameterValue, match="neither declared"):
        project.get_entry_point("missing.py")
    with pytest.raises(InvalidParameterValue, match="outside the project"):
        project.get_entry_point("../a.py")


def test_docker_env_is_parsed_and_validated(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "MLproject": """
                name: dockerized
                docker_env:
                  image: registry.example.com/team/img:7.0
                  volumes: ["/local/path:/container/mount/path"]
                  environment: [["NEW_ENV_VAR", "new_var_value"], "VAR_TO_COPY"]
                entry_points:
                  main: {command: "python train.py"}
            """
        },
    )
    project = load_project(tmp_path)
    assert project.env == DockerEnv(
        image="registry.example.com/team/img:7.0",
        volumes=("/local/path:/container/mount/path",),
        environment=(("NEW_ENV_VAR", "new_var_value"), "VAR_TO_COPY"),
    )


INVALID_MLPROJECTS = [
    ("name: x\nentry_point: {main: {command: a}}\n", "unknown key 'entry_point'"),
    (
        "python_env: p.yaml\nconda_env: c.yaml\n",
        "keys 'python_env' and 'conda_env' both given",
    ),
    (
        "entry_points: {main: {parameters: {a: string}}}\n",
        "key 'entry_points.main.command' is missing",
    ),
    (
        "entry_points: {main: {command: 42}}\n",
        "'entry_points.main.command' must be a non-empty string",
    ),
    ("entry_points: [main]\n", "key 'entry_points' must be a mapping"),
    ("entry_points: {main: {command: a, args: 1}}\n", "unknown key 'entry_points.main.args'"),
    (
        "entry_points: {main: {command: a, parameters: {p: {type: int}}}}\n",
        "'entry_points.main.parameters.p.type' is 'int'",
    ),
    (
        "entry_points: {main: {command: a, parameters: {p: {type: float, dflt: 1}}}}\n",
        "unknown key 'entry_points.main.parameters.p.dflt'",
    ),
    (
        "entry_points: {main: {command: a, parameters: [p]}}\n",
        "'entry_points.main.parameters' must be a mapping",
    ),
    ("name: [a, b]\n", "key 'name' must be a non-empty string"),
    ("python_env: missing.yaml\n", "key 'python_env' names 'missing.yaml', which does not exist"),
    ("python_env: ../outside.yaml\n", "points outside the project"),
    ("docker_env: {volumes: []}\n", "'docker_env.image' must be a non-empty image name"),
    ("docker_env: {image: x, ports: [80]}\n", "unknown key 'docker_env.ports'"),
    ("docker_env: {image: x, environment: [[a, b, c]]}\n", "'docker_env.environment' holds"),
    ("docker_env: {image: x, volumes: /a:/b}\n", "'docker_env.volumes' must be a list"),
    ("- just\n- a list\n", "must be a mapping"),
    ("name: [unclosed\n", "is not valid YAML"),
]


@pytest.mark.parametrize(("text", "message"), INVALID_MLPROJECTS)
def test_invalid_mlproject_names_key_and_file(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path / "proj", {"MLproject": text, "p.yaml": 'python: "3.11"\n'})
    with pytest.raises(InvalidParameterValue) as info:
        load_project(tmp_path / "proj")
    assert message in info.value.message
    assert str(tmp_path / "proj" / "MLproject") in info.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("python: 3.10\n", 'must be a quoted string such as "3.11", got the number 3.1'),
        ("dependencies: [a]\n", "key 'python' (the Python version) is missing"),
        ('python: "3.11"\ndeps: [a]\n', "unknown key 'deps'"),
        ('python: "3.11"\ndependencies: a\n', "key 'dependencies' must be a list of strings"),
        ('python: "three"\n', "must be a Python version"),
    ],
)
def test_invalid_python_env_yaml(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, {"python_env.yaml": text})
    with pytest.raises(InvalidParameterValue) as info:
        load_project(tmp_path)
    assert message in info.value.message
    assert "python_env.yaml" in info.value.message
