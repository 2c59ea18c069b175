"""Configuration through the real CLI: flags > AUDITD_* > config file, and one-line errors naming the key."""
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AUDITD = os.environ.get("AUDITD_BIN", os.path.join(ROOT, ".build", "debug", "auditd"))

pytestmark = pytest.mark.skipif("AUDITD_BROKERS" not in os.environ, reason="needs dev/cluster up + dev/cluster exec")


def auditd(*args, env=None, **kw):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AUDITD_") or k == "AUDITD_BROKERS"}
    environment.update(env or {})
    return subprocess.run([AUDITD, *args], capture_output=True, text=True, timeout=300, env=environment, **kw)


def test_state_comes_from_flag_then_environment_then_file(tmp_path):
    brokers = os.environ["AUDITD_BROKERS"]
    for name in ("flag", "env", "file"):
        (tmp_path / name).mkdir()
    config = tmp_path / "auditd.yaml"
    config.write_text("state: %s\nbrokers: 127.0.0.1:1\n" % (tmp_path / "file"))
    # file only (the environment's brokers still win over the file's unreachable ones)
    done = auditd("run", "--once", "--topic-prefix", "it_cfg_nothing", "--config", str(config), env={"AUDITD_BROKERS": brokers})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "file" / "shadow.sqlite").exists()
    # the environment beats the file
    done = auditd("run", "--once", "--topic-prefix", "it_cfg_nothing", "--config", str(config),
                  env={"AUDITD_BROKERS": brokers, "AUDITD_STATE": str(tmp_path / "env")})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "env" / "shadow.sqlite").exists()
    # the flag beats both
    done = auditd("run", "--once", "--topic-prefix", "it_cfg_nothing", "--config", str(config), "--state", str(tmp_path / "flag"),
                  env={"AUDITD_BROKERS": brokers, "AUDITD_STATE": str(tmp_path / "env")})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "flag" / "shadow.sqlite").exists()


@pytest.mark.parametrize("args,env,message", [
    (["report", "--brokers", "nohostport"], {}, "--brokers: 'nohostport' is not HOST:PORT[,HOST:PORT]"),
    (["report"], {"AUDITD_LOG_LEVEL": "loud"}, "AUDITD_LOG_LEVEL: 'loud' is not one of"),
    (["audit", "--once", "--read-concurrency", "0"], {}, "--read-concurrency: '0' is not a whole number of at least 1"),
    (["audit", "--once"], {"AUDITD_MODE": "fast"}, "AUDITD_MODE: 'fast' is not one of pk, full, sample"),
])
def test_a_bad_value_is_one_line_naming_where_it_came_from(tmp_path, args, env, message):
    done = auditd(*args, "--state", str(tmp_path), env=env)
    assert done.returncode == 64, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_a_bad_config_file_names_the_file_line_and_key(tmp_path):
    config = tmp_path / "auditd.yaml"
    config.write_text("brokers: 127.0.0.1:9092\nsettle: soon\n")
    done = auditd("audit", "--once", "--config", str(config), "--state", str(tmp_path))
    assert done.returncode == 64 and "config file key 'settle': 'soon' is not a number of seconds" in done.stderr
    config.write_text("brokers: 127.0.0.1:9092\nbrokerz: x\n")
    done = auditd("report", "--config", str(config), "--state", str(tmp_path))
    assert done.returncode == 64 and "auditd.yaml:2: unknown key 'brokerz'" in done.stderr, done.stderr
