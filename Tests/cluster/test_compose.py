"""The deployment files, without a Docker engine: the compose file's auditd sidecar, run as a local process
with the same command, environment and mounted config against the local cluster, starts and serves; the
Dockerfile and the monitoring profile are what operators expect."""
import os
import re
import subprocess
import time
import urllib.request

import pytest
import yaml

from test_alerting import free_port, get, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AUDITD = os.environ.get("AUDITD_BIN", os.path.join(ROOT, ".build", "debug", "auditd"))


def compose():
    return yaml.safe_load(open(os.path.join(ROOT, "docker-compose.yml")))


def dockerfile():
    return open(os.path.join(ROOT, "Dockerfile")).read()


def test_dockerfile_runs_serve_as_non_root_with_a_state_volume_and_a_healthcheck():
    text = dockerfile()
    assert re.search(r"^FROM swift:6[.\d]*-bookworm AS build", text, re.M)
    assert re.search(r"^FROM debian:bookworm-slim", text, re.M)
    runtime = text.split("FROM debian:bookworm-slim", 1)[1]
    for package in ("librdkafka1", "libcurl4", "libxxhash0", "libsqlite3-0"):
        assert package in runtime
    assert re.search(r"^USER auditd", runtime, re.M)
    assert 'VOLUME ["/var/lib/auditd"]' in runtime
    assert re.search(r"HEALTHCHECK .*\n?.*/healthz", runtime)
    assert 'ENTRYPOINT ["auditd", "serve"]' in runtime


def test_the_image_build_copies_every_folder_a_target_lives_in():
    # SwiftPM refuses a manifest whose target folder is missing, even when building one product
    package = open(os.path.join(ROOT, "Package.swift")).read()
    folders = {p.split("/")[0] for p in re.findall(r'path: "([^"]+)"', package)} | {"Sources", "Tests"}
    copied = set(re.findall(r"^COPY (\S+) ", dockerfile(), re.M))
    assert folders <= copied, "not copied into the build stage: %s" % sorted(folders - copied)


def test_compose_declares_the_sidecar_and_the_monitoring_profile():
    services = compose()["services"]
    auditd = services["auditd"]
    assert {"kafka", "etcd", "proxy"} <= set(auditd["depends_on"])
    assert all(auditd["depends_on"][s]["condition"] == "service_healthy" for s in ("kafka", "etcd", "proxy"))
    assert "127.0.0.1:9187:9187" in auditd["ports"]
    assert any(v.startswith("auditd:/var/lib/auditd") for v in auditd["volumes"])
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["alertmanager"]["profiles"] == ["monitoring"]
    assert "auditd" in compose()["volumes"]
    prometheus = yaml.safe_load(open(os.path.join(ROOT, "deploy", "prometheus", "prometheus.yml")))
    assert prometheus["rule_files"] == ["/etc/prometheus/auditd-rules.yml"]
    assert prometheus["scrape_configs"][0]["static_configs"][0]["targets"] == ["auditd:9187"]


def test_every_sidecar_variable_is_a_setting_auditd_knows():
    environment = compose()["services"]["auditd"]["environment"]
    help_text = subprocess.run([AUDITD, "serve", "--help"], capture_output=True, text=True).stdout
    flags = set(re.findall(r"--([a-z][a-z-]+)", help_text))
    for name in environment:
        flag = name[len("AUDITD_"):].lower().replace("_", "-")
        assert name.startswith("AUDITD_") and (flag in flags or flag == "state"), name


@pytest.mark.skipif("AUDITD_BROKERS" not in os.environ, reason="needs dev/cluster up + dev/cluster exec")
def test_the_sidecar_as_composed_starts_and_serves_against_the_local_cluster(tmp_path):
    auditd = compose()["services"]["auditd"]
    port = free_port()
    # the compose network's names are this machine's loopback; the volume and the config mount are local paths
    local = {"kafka:9092": os.environ["AUDITD_BROKERS"], "proxy:19530": "127.0.0.1:19530", "etcd:2379": "127.0.0.1:2379",
             "/var/lib/auditd": str(tmp_path / "state"), "0.0.0.0:9187": "127.0.0.1:%d" % port}
    environment = {k: local.get(str(v), str(v)) for k, v in auditd["environment"].items()}
    mounts = dict(v.split(":")[1::-1] for v in auditd["volumes"] if v.startswith("./"))
    command = [local.get(a, a) for a in auditd["command"]]
    command = [os.path.join(ROOT, mounts[a][2:]) if a in mounts else a for a in command]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITD_")}
    env.update(environment)
    env["AUDITD_AUDIT_INTERVAL"] = "5"  # a test cannot wait a minute for the first round
    serve = subprocess.Popen([AUDITD, "serve", *command], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    try:
        wait_for(lambda: get("http://127.0.0.1:%d/healthz" % port)[0] == 200, 60, "/healthz")
        wait_for(lambda: get("http://127.0.0.1:%d/readyz" % port)[0] == 200, 120, "/readyz")
        status, report = get("http://127.0.0.1:%d/v1/report" % port)
        assert status == 200 and report.startswith('{"collections":['), report[:200]
        assert (tmp_path / "state" / "shadow.sqlite").exists()
        serve.terminate()
        assert serve.wait(timeout=10) == 0
    finally:
        serve.kill()
        print(serve.stderr.read()[-3000:] if serve.stderr else "")
