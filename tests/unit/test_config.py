"""Settings from defaults, a TOML file and the environment; secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import Secret, Settings, load_settings


def test_defaults_run_the_embedded_mode() -> None:
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.kafka_bootstrap is None
    assert settings.clickhouse_url is None
    with pytest.raises(ValueError, match="KAFKA_BOOTSTRAP"):
        settings.kafka()


def test_environment_over_toml(tmp_path: Path) -> None:
    config = tmp_path / "vmgate.toml"
    config.write_text(
        """
[kafka]
bootstrap = "from-file:9092"
group = "file-group"
cdr_partitions = 12
[kafka.librdkafka]
"security.protocol" = "SASL_SSL"
"sasl.password" = "hunter2"
[clickhouse]
url = "https://u:pw@ch:8443/db"
password = "pw2"
[rater]
batch_size = 20000
"""
    )
    settings = load_settings(
        config, environ={"KAFKA_BOOTSTRAP": "from-env:9092", "VMGATE_BATCH_SIZE": "1234"}
    )
    assert settings.kafka_bootstrap == "from-env:9092"
    assert settings.group_id == "file-group"
    assert settings.cdr_partitions == 12
    assert settings.batch_size == 1234
    assert settings.clickhouse_url == Secret("https://u:pw@ch:8443/db")
    kafka = settings.kafka(**{"group.id": "g"})
    assert kafka["bootstrap.servers"] == "from-env:9092"
    assert kafka["sasl.password"] == "hunter2"
    assert kafka["group.id"] == "g"


def test_secrets_are_masked_everywhere(tmp_path: Path) -> None:
    config = tmp_path / "vmgate.toml"
    config.write_text('[kafka.librdkafka]\n"sasl.password" = "hunter2"\n')
    settings = load_settings(
        config,
        environ={"CLICKHOUSE_URL": "http://u:topsecret@h:8123/db", "CLICKHOUSE_PASSWORD": "pw"},
    )
    for text in (repr(settings), str(settings), str(settings.masked())):
        assert "topsecret" not in text
        assert "hunter2" not in text
        assert "'pw'" not in text
    assert settings.masked()["librdkafka"] == {"sasl.password": "***"}
    assert settings.clickhouse_password is not None
    assert settings.clickhouse_password.reveal() == "pw"


def test_a_bad_number_in_the_environment_is_named() -> None:
    with pytest.raises(ValueError, match="VMGATE_BATCH_SIZE='many'"):
        load_settings(environ={"VMGATE_BATCH_SIZE": "many"})


def test_startup_wait_from_the_environment_over_toml(tmp_path: Path) -> None:
    assert load_settings(environ={}).startup_wait_s == 120.0
    config = tmp_path / "vmgate.toml"
    config.write_text("[startup]\nwait_s = 30\n")
    assert load_settings(config, environ={}).startup_wait_s == 30
    settings = load_settings(config, environ={"VMGATE_STARTUP_WAIT_S": "2.5"})
    assert settings.startup_wait_s == 2.5
    assert load_settings(environ={"VMGATE_STARTUP_WAIT_S": "0"}).startup_wait_s == 0


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon"])
def test_a_bad_startup_wait_is_refused_in_one_line(value: str) -> None:
    with pytest.raises(ValueError, match="VMGATE_STARTUP_WAIT_S") as refused:
        load_settings(environ={"VMGATE_STARTUP_WAIT_S": value})
    assert "\n" not in str(refused.value)
