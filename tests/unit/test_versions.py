"""The pinned versions of deploy/versions.toml, and every file that repeats one.

The server image must run the same ClickHouse release line as the embedded engine the tests
run, so the SQL is tested on the engine that serves it; images are pinned to exact versions so
a stack started next year is the stack tested today.
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import chdb
import pytest
import yaml

from pipeline.storage.server_version import OLDEST, ServerVersion

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
VERSIONS = tomllib.loads((DEPLOY / "versions.toml").read_text(encoding="utf-8"))
# An exact tag: at least three numeric parts (v3.5.0, 4.4.0, 26.9.2.8, 3.11.14-slim).
EXACT = re.compile(r"^v?\d+\.\d+\.\d+(?:\.\d+)?(?:-[a-z0-9.]+)?$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (DEPLOY / "docker-compose.yml").read_text(encoding="utf-8")
    )
    return loaded


@pytest.mark.parametrize("service", ["clickhouse", "kafka", "prometheus", "grafana"])
def test_compose_runs_the_pinned_images(compose: dict[str, Any], service: str) -> None:
    assert compose["services"][service]["image"] == VERSIONS["images"][service]


@pytest.mark.parametrize("name", sorted(VERSIONS["images"]))
def test_every_image_is_pinned_to_an_exact_version(name: str) -> None:
    image, _, tag = VERSIONS["images"][name].rpartition(":")
    assert image
    assert EXACT.match(tag), f"{name}: {tag!r} is not an exact version"


def test_the_rater_image_builds_on_the_pinned_python() -> None:
    lines = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines()
    bases = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert bases == [VERSIONS["images"]["python"]]


def test_grafana_installs_the_pinned_plugin(compose: dict[str, Any]) -> None:
    plugin = VERSIONS["plugins"]["grafana-clickhouse-datasource"]
    assert EXACT.match(plugin)
    preinstall = compose["services"]["grafana"]["environment"]["GF_PLUGINS_PREINSTALL_SYNC"]
    assert preinstall == f"grafana-clickhouse-datasource@{plugin}"


def test_the_server_runs_the_release_line_of_the_engine_the_tests_run() -> None:
    tag = VERSIONS["images"]["clickhouse"].rpartition(":")[2]
    assert ServerVersion.parse(tag) == ServerVersion.parse(str(chdb.engine_version))
    assert ServerVersion.parse(tag) >= OLDEST


def test_the_engine_is_pinned_and_installed_at_that_version() -> None:
    pinned = VERSIONS["python"]["chdb"]
    project = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert f"chdb=={pinned}" in project["project"]["dependencies"]
    assert installed_version("chdb") == pinned


def test_the_stack_runs_the_kafka_release_the_tests_run() -> None:
    pom = ElementTree.parse(DEPLOY / "local" / "pom.xml")
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    found = pom.find("m:properties/m:kafka.version", namespace)
    assert found is not None
    assert found.text == VERSIONS["local"]["kafka"]
    assert VERSIONS["images"]["kafka"] == f"apache/kafka:{VERSIONS['local']['kafka']}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("26.9", (26, 9)),
        ("26.9.2.8", (26, 9)),
        ("v25.10.1.3-stable", (25, 10)),
        (" 25.3 ", (25, 3)),
    ],
)
def test_server_versions_parse(text: str, expected: tuple[int, int]) -> None:
    assert ServerVersion.parse(text) == ServerVersion(*expected)


@pytest.mark.parametrize("text", ["", "26", "latest", "26.x", "26.9; DROP", "1.2.3.4.5.6-x y"])
def test_a_version_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a ClickHouse version"):
        ServerVersion.parse(text)


@pytest.mark.parametrize("service", ["clickhouse", "kafka", "prometheus", "grafana"])
def test_the_deployment_guide_names_the_pinned_images(service: str) -> None:
    guide = (DEPLOY.parent / "docs" / "deployment.md").read_text(encoding="utf-8")
    assert f"`{VERSIONS['images'][service]}`" in guide
