"""Verifies the whole dev stack deployed through the preset, end to end with real workflows."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from functools import cache
from pathlib import Path

import pytest
import yaml
from conftest import (
    assert_a_failed_transfer_is_compensated,
    assert_check_mode_changes_nothing,
    assert_the_machine_operator_follows_signals,
    assert_the_web_ui_lists,
    execute_an_order,
    run_json,
    run_playbook,
    scenario_dir,
    wait_for,
)

ADDRESS = "127.0.0.1:7233"
WORKERS_CLI = "/opt/temporal-workers/venv/bin/temporal-workers"
QUEUES = ["orders", "sagas", "stateful-machines", "loyalty"]
SERVICES = {"temporal-dev-server": "temporal", "prometheus": "prometheus", "temporal-api": "temporal-api"} | {
    f"temporal-worker@{q}": "temporal-worker" for q in QUEUES
}
API = "http://127.0.0.1:8000"
CONVERGE_VARS = yaml.safe_load((scenario_dir() / "converge.yml").read_text())[0]["vars"]
ENVIRONMENT = CONVERGE_VARS["temporal_worker_environment"]
PROMETHEUS_DROPIN = "/etc/systemd/system/prometheus.service.d/durable-temporal.conf"
EXPOSURE = re.compile(r"Overall exposure level for \S+: (?P<level>[0-9.]+)")
ORDER_ITEMS = json.dumps([{"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 1250}])


def temporal_json(host, args: str):
    return run_json(host, f"temporal {args} --address {ADDRESS} -o json")



def order_cli(host, workflow_id: str, extra: str = "") -> str:
    return f"{WORKERS_CLI} order --id {workflow_id} --items-json '{ORDER_ITEMS}' --address '1 Main St' --email a@example.com {extra}"


@pytest.fixture(scope="module")
def completed_order(host) -> str:
    """An OrderWorkflow started with the real temporal CLI, served by the deployed worker."""
    return execute_an_order(host, lambda args: f"temporal {args} --address {ADDRESS}")


def test_check_mode_on_the_converged_host_changes_nothing(check_mode_run):
    assert_check_mode_changes_nothing(check_mode_run)


@pytest.mark.parametrize(("service", "user"), SERVICES.items())
def test_every_service_is_active_and_runs_as_its_own_user(host, service, user):
    assert host.service(service).is_running
    assert host.service(service).is_enabled
    pid = host.check_output(f"systemctl show -p MainPID --value {service}")
    assert host.check_output(f"ps -o user= -p {pid}") == user
    assert host.user(user).shell in ("/usr/sbin/nologin", "/bin/false")


def test_worker_configuration_is_not_world_readable(host):
    config = host.file("/etc/temporal-workers/config.yaml")
    assert config.user == "root" and config.group == "temporal-worker" and config.mode == 0o640
    assert host.file("/etc/temporal-workers").mode == 0o750


def test_prometheus_reports_every_target_up(host):
    def targets():
        data = run_json(host, "curl -fsS http://127.0.0.1:9090/api/v1/targets")["data"]["activeTargets"]
        return data if data and all(t["health"] == "up" for t in data) else None

    up = wait_for(targets, 90, "every Prometheus target up")
    jobs = sorted(t["labels"]["job"] for t in up)
    assert jobs.count("temporal-workers") == len(QUEUES)
    assert jobs.count("temporal-server") == 1
    assert jobs.count("temporal-api") == 1
    assert {t["labels"].get("task_queue") for t in up if t["labels"]["job"] == "temporal-workers"} == set(QUEUES)


def listeners(host) -> dict[int, set[str]]:
    """Listening TCP ports and the addresses they are bound to."""
    found: dict[int, set[str]] = {}
    for line in host.check_output("ss -ltnH").splitlines():
        address, port = line.split()[3].rsplit(":", 1)
        found.setdefault(int(port), set()).add(address)
    return found


def test_worker_metrics_and_prometheus_listen_on_loopback_only(host):
    listening = listeners(host)
    for port in (9464, 9465, 9466, 9467, 9090):
        assert listening.get(port) == {"127.0.0.1"}, f"port {port} is bound to {listening.get(port)}"


def test_prometheus_runs_hardened_by_the_drop_in(host):
    assert PROMETHEUS_DROPIN in host.check_output("systemctl show -p DropInPaths --value prometheus")
    report = host.run("systemd-analyze security prometheus.service")
    level = float(EXPOSURE.search(report.stdout)["level"])
    print(f"systemd-analyze security prometheus.service: exposure {level}")
    assert level <= 2.0, report.stdout
    # Still scraping and answering with the hardening in place.
    assert host.run("curl -fsS http://127.0.0.1:9090/-/ready").rc == 0


def worker_environment(host, service: str) -> dict[str, str]:
    """The environment of a running worker process, read from /proc."""
    pid = host.check_output(f"systemctl show -p MainPID --value {service}")
    raw = host.check_output(f"base64 -w0 /proc/{pid}/environ")
    pairs = base64.b64decode(raw).decode().split("\0")
    return dict(pair.split("=", 1) for pair in pairs if "=" in pair)


def test_the_environment_reaches_the_workers_exactly_as_given(host):
    for queue in QUEUES:
        seen = worker_environment(host, f"temporal-worker@{queue}")
        for key, value in ENVIRONMENT.items():
            assert seen.get(key) == value, f"{queue}: {key} arrived as {seen.get(key)!r}, not {value!r}"
    assert host.file("/etc/temporal-workers/environment").mode == 0o640


def test_an_environment_value_with_a_newline_stops_the_play_before_any_change(host):
    before = host.file("/etc/temporal-workers/environment").sha256sum
    run = run_playbook(
        scenario_dir() / "converge.yml",
        extra_vars={"temporal_worker_environment": ENVIRONMENT | {"DT_BROKEN": "one\nDT_INJECTED=two"}},
    )
    assert run.returncode != 0, "a value with a newline was accepted"
    assert "temporal_worker_environment" in run.output and "DT_BROKEN" in run.output and "newline" in run.output, run.output[-3000:]
    assert not any(counts["changed"] for counts in run.recap().values()), run.changed_tasks()
    assert host.file("/etc/temporal-workers/environment").sha256sum == before


def test_a_worker_with_a_configuration_error_stays_failed_instead_of_restarting(host):
    """Exit code 2 (a configuration error) is in RestartPreventExitStatus: the unit stays failed."""
    service = "temporal-worker@loyalty"
    dropin = f"/run/systemd/system/{service}.service.d"
    assert "2" in host.check_output(f"systemctl show -p RestartPreventExitStatus --value {service}").split()
    host.run_expect([0], f"mkdir -p {dropin} && printf '[Service]\\nEnvironment=TEMPORAL_WORKERS_LOG_LEVEL=LOUD\\n' > {dropin}/bad.conf")
    try:
        host.run_expect([0], f"systemctl daemon-reload && systemctl reset-failed {service}; systemctl restart {service}")
        wait_for(lambda: host.check_output(f"systemctl show -p ActiveState --value {service}") == "failed", 30, f"{service} to fail")
        # RestartSec is 2 s: a looping unit would have restarted several times by now.
        time.sleep(8)
        shown = dict(
            line.split("=", 1)
            for line in host.check_output(f"systemctl show -p ActiveState -p Result -p ExecMainStatus -p NRestarts {service}").splitlines()
        )
        assert shown == {"ActiveState": "failed", "Result": "exit-code", "ExecMainStatus": "2", "NRestarts": "0"}, shown
        assert "TEMPORAL_WORKERS_LOG_LEVEL" in host.check_output(f"journalctl -u {service} -n 20 --no-pager -o cat")
    finally:
        host.run(f"rm -rf {dropin}; systemctl daemon-reload; systemctl reset-failed {service}; systemctl start {service}")
    wait_for(lambda: host.service(service).is_running, 30, f"{service} to run again")


def test_no_secret_of_the_environment_reaches_diff_or_verbose_output(host):
    """A converge with --diff -vvv that changes a secret value: the file task reports a change, the output holds no secret."""
    secret = f"dt-secret-{uuid.uuid4().hex}"
    run = run_playbook(
        scenario_dir() / "converge.yml", "--diff", "-vvv", extra_vars={"temporal_worker_environment": ENVIRONMENT | {"DT_SECRET": secret}}
    )
    try:
        assert run.returncode == 0, run.output[-4000:]
        task = run.output.split("Write the workers' environment]", 1)[1].split("TASK [", 1)[0]
        assert "changed:" in task, task
        assert secret not in run.output, "the secret is in the converge output"
        assert secret[len("dt-secret-") :] not in run.output
        assert worker_environment(host, "temporal-worker@orders").get("DT_SECRET") == secret
    finally:
        restored = run_playbook(scenario_dir() / "converge.yml")
        assert restored.returncode == 0, restored.output[-4000:]


PHASES = {"install", "configure", "run", "always"}


@cache
def tags_by_line(path: str) -> dict[int, frozenset[str]]:
    """Per task of a tasks file or playbook, by the line -vv gives as its task path: its tags with its blocks'."""
    found: dict[int, frozenset[str]] = {}

    def walk(node, inherited: frozenset[str]) -> None:
        for item in node.value if isinstance(node, yaml.SequenceNode) else []:
            if not isinstance(item, yaml.MappingNode):
                continue
            keys = {key.value: value for key, value in item.value}
            tags = keys.get("tags")
            own = [tag.value for tag in tags.value] if isinstance(tags, yaml.SequenceNode) else [tags.value] if tags else []
            found[item.start_mark.line + 1] = inherited | frozenset(own)
            for key in ("block", "rescue", "always", "tasks", "handlers"):
                if key in keys:
                    walk(keys[key], inherited | frozenset(own))

    walk(yaml.compose(Path(path).read_text()), frozenset())
    return found


def tasks_run(output: str) -> list[tuple[str, frozenset[str], bool, bool]]:
    """(name, tags, handler, changed) of every task and handler an -vv run went through."""
    tasks: list[list] = []
    for line in output.splitlines():
        header = re.match(r"^(TASK|RUNNING HANDLER) \[(?P<name>.*?)\] \**$", line)
        if header:
            tasks.append([header["name"].split(" : ", 1)[-1], None, header[1] != "TASK", False])
        elif line.startswith("task path: ") and tasks:
            path, number = line[len("task path: ") :].rsplit(":", 1)
            tasks[-1][1] = tags_by_line(path).get(int(number))
        elif line.startswith("changed: ") and tasks:
            tasks[-1][3] = True
    # Ansible's own tasks: facts, and the check of a role's variables against its argument specification.
    implicit = ("Gathering Facts", "Validating arguments against arg spec")
    return [(name, tags, handler, changed) for name, tags, handler, changed in tasks if not name.startswith(implicit)]


def test_tags_configure_applies_a_changed_value_and_restarts_the_workers_with_it_and_nothing_else(host):
    """--tags configure, after a change of one worker setting: only configuration tasks (and what every phase needs) run."""
    service = "temporal-worker@orders"
    pid = host.check_output(f"systemctl show -p MainPID --value {service}")
    value = f"configured-{uuid.uuid4().hex[:8]}"
    run = run_playbook(
        scenario_dir() / "converge.yml", "--tags", "configure", "-vv", extra_vars={"temporal_worker_environment": ENVIRONMENT | {"DT_PLAIN": value}}
    )
    try:
        assert run.returncode == 0, run.output[-4000:]
        ran = tasks_run(run.output)
        tasks = [(name, tags) for name, tags, handler, _ in ran if not handler]
        assert tasks and all(tags is not None for _, tags in tasks), [name for name, tags in tasks if tags is None]
        assert all(tags in ({"configure"}, {"always"}) for _, tags in tasks), [(name, sorted(tags)) for name, tags in tasks if tags not in ({"configure"}, {"always"})]
        assert ("Write the workers' environment", {"configure"}) in tasks
        changed = {name for name, tags, handler, changed in ran if changed}
        assert changed == {"Write the workers' environment", "Restart the worker services, each draining its tasks first, on instance"}, run.changed_tasks()
        assert worker_environment(host, service).get("DT_PLAIN") == value
        assert host.check_output(f"systemctl show -p MainPID --value {service}") != pid, "the worker was not restarted"
    finally:
        restored = run_playbook(scenario_dir() / "converge.yml", "--tags", "configure")
        assert restored.returncode == 0, restored.output[-4000:]
    assert worker_environment(host, service).get("DT_PLAIN") == ENVIRONMENT["DT_PLAIN"]


def test_tags_install_on_the_converged_host_changes_nothing_and_runs_only_install_tasks(host):
    run = run_playbook(scenario_dir() / "converge.yml", "--tags", "install", "-vv")
    assert run.returncode == 0, run.output[-4000:]
    assert not any(counts["changed"] for counts in run.recap().values()), run.changed_tasks()
    tasks = [(name, tags) for name, tags, handler, _ in tasks_run(run.output) if not handler]
    assert all(tags in ({"install"}, {"always"}) for _, tags in tasks), [(name, sorted(tags or ())) for name, tags in tasks if tags not in ({"install"}, {"always"})]
    assert any(tags == {"install"} for _, tags in tasks), "no install task ran"


def test_order_started_with_the_cli_completes_through_the_deployed_worker(host, completed_order):
    info = temporal_json(host, f"workflow describe --workflow-id {completed_order}")
    assert info["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"
    result = run_json(host, f"{WORKERS_CLI} result --id {completed_order}")
    assert "COMPLETED" in json.dumps(result).upper()
    assert "tracking" in json.dumps(result).lower()


def test_saga_with_an_injected_credit_failure_compensates(host):
    assert_a_failed_transfer_is_compensated(host, WORKERS_CLI)


def test_machine_operator_answers_signals_and_queries_sent_with_the_cli(host):
    assert_the_machine_operator_follows_signals(host, lambda args: f"temporal {args} --address {ADDRESS}")


def test_a_worker_killed_mid_workflow_restarts_and_the_workflow_completes(host):
    service = "temporal-worker@orders"
    pid_before = host.check_output(f"systemctl show -p MainPID --value {service}")
    workflow_id = f"order-killed-{uuid.uuid4().hex[:8]}"
    started = host.run(order_cli(host, workflow_id, "--ship-delay 6 --no-wait"))
    assert started.rc == 0, started.stderr

    def shipping_started():
        history = host.run(f"temporal workflow show --workflow-id {workflow_id} --address {ADDRESS} -o json").stdout
        return "ship_order" in history and "ActivityTaskStarted" in history.replace("_", "").replace("EVENTTYPEACTIVITYTASKSTARTED", "ActivityTaskStarted")

    wait_for(shipping_started, 30, "ship_order to start")
    killed = host.run(f"systemctl kill -s SIGKILL {service}")
    assert killed.rc == 0, killed.stderr
    wait_for(
        lambda: host.check_output(f"systemctl show -p MainPID --value {service}") not in ("0", pid_before),
        30,
        "systemd to restart the killed worker",
    )
    assert int(host.check_output(f"systemctl show -p NRestarts --value {service}")) >= 1
    result = run_json(host, f"{WORKERS_CLI} result --id {workflow_id}")
    assert "COMPLETED" in json.dumps(result).upper()


def test_an_order_placed_with_curl_through_the_api_completes(host):
    workflow_id = f"api-order-{uuid.uuid4().hex[:8]}"
    order = json.dumps({"order_id": workflow_id, "items": json.loads(ORDER_ITEMS), "address": "1 Main St", "email": "a@example.com"})
    post = f"curl -sS -o /dev/stderr -w '%{{http_code}}' -H 'Content-Type: application/json' -H 'Idempotency-Key: {workflow_id}' -d '{order}' {API}/orders"
    first = host.run(post)
    assert first.stdout == "202", first.stderr
    assert json.loads(first.stderr)["workflow_id"] == workflow_id
    assert host.run(post).stdout == "200", "the same key and body must answer with the same workflow"
    outcome = run_json(host, f"curl -fsS '{API}/workflows/{workflow_id}/result?wait_seconds=30'")
    assert outcome["status"] == "COMPLETED", outcome
    assert outcome["result"]["tracking_number"].startswith("TRK-")
    assert run_json(host, f"curl -fsS {API}/readyz") == {"status": "ready"}


def test_the_api_is_hardened(host):
    exposure = host.check_output("systemd-analyze security temporal-api.service | tail -n 1")
    assert float(exposure.split(":")[1].split()[0]) <= 2.0, exposure
    config = host.file("/etc/temporal-api/config.yaml")
    assert config.user == "root" and config.group == "temporal-api" and config.mode == 0o640


def test_the_api_docs_render_in_headless_chromium(host):
    ip = host.check_output("hostname -I").split()[0]
    # The operation summaries appear only once Swagger UI, served by the API itself, rendered the document.
    assert_the_web_ui_lists(f"http://{ip}:8000/docs", "Place an order", "api-docs.png")


def test_web_ui_lists_the_completed_order(host, completed_order):
    ip = host.check_output("hostname -I").split()[0]
    assert_the_web_ui_lists(f"http://{ip}:8233/namespaces/default/workflows", completed_order, "ui-workflows.png")


def test_a_bad_variable_of_any_component_stops_the_preset_before_any_change(host):
    """The dev server comes first in the preset: a later component's bad variable must stop it all the same."""
    cases = {
        "temporal_worker_drain_timeout": "soon",
        "temporal_worker_install_from": "carrier-pigeon",
        "temporal_prometheus_scrape_interval": "often",
    }
    for variable, value in cases.items():
        run = run_playbook(
            scenario_dir() / "converge.yml",
            extra_vars={variable: value, "temporal_dev_server_data_dir": "/var/lib/must-not-exist"},
        )
        assert run.returncode != 0, f"{variable}={value} was accepted"
        assert variable in run.output, f"the error for {variable}={value} does not name it:\n{run.output[-3000:]}"
        assert not host.file("/var/lib/must-not-exist").exists, f"{variable}={value}: the preset changed the host before failing"


def test_a_queue_dropped_from_the_inventory_stops_and_comes_back_when_listed_again(host):
    """The role reads every worker service's state in one call; what it acts on must still be right."""
    kept = [{"name": q, "metrics_port": 9464 + i} for i, q in enumerate(QUEUES) if q != "loyalty"]
    dropped = run_playbook(scenario_dir() / "converge.yml", extra_vars={"temporal_worker_queues": kept})
    assert dropped.returncode == 0, dropped.output[-4000:]
    assert not host.service("temporal-worker@loyalty").is_running
    assert not host.service("temporal-worker@loyalty").is_enabled
    for queue in kept:
        assert host.service(f"temporal-worker@{queue['name']}").is_running

    host.run_expect([0], "systemctl stop temporal-worker@orders")
    listed = run_playbook(scenario_dir() / "converge.yml")
    assert listed.returncode == 0, listed.output[-4000:]
    start_task = listed.output.split("Enable and start what is down or disabled among temporal-worker@", 1)[1].split("TASK [", 1)[0]
    started = {line.split("item=")[1].rstrip(")") for line in start_task.splitlines() if line.startswith("changed:")}
    assert started == {"temporal-worker@loyalty", "temporal-worker@orders"}, start_task
    for queue in QUEUES:
        assert host.service(f"temporal-worker@{queue}").is_running, queue
        assert host.service(f"temporal-worker@{queue}").is_enabled, queue
    assert host.socket("tcp://127.0.0.1:9467").is_listening  # loyalty's port, from config.yaml


def test_what_a_converged_run_skips_is_put_back_when_it_drifted(host):
    """A no-change run trusts one read per role; hand-made drift must still be found and undone."""
    venv = "/opt/temporal-workers/venv"
    host.run_expect([0], f"{venv}/bin/pip uninstall -y durable-temporal-workers")
    host.run_expect([0], "chmod 0644 /etc/temporal-workers/config.yaml")
    host.run_expect([0], "rm /usr/local/bin/temporal")
    host.run_expect([0], "sed -i 's/^Description=.*/Description=edited by hand/' /etc/systemd/system/temporal-dev-server.service")

    again = run_playbook(scenario_dir() / "converge.yml")
    assert again.returncode == 0, again.output[-4000:]
    for task in (
        "Install the package into the virtualenv from the wheelhouse only",
        "Write the workers' configuration, checked by the workers themselves",
        "Make the CLI binary executable and point the temporal command at it",
        "Write the unit temporal-dev-server.service",
    ):
        section = again.output.split(task, 1)[1].split("TASK [", 1)[0]
        assert "changed:" in section, (task, section)
    assert host.file(f"{venv}/bin/temporal-workers").exists
    assert host.file("/etc/temporal-workers/config.yaml").mode == 0o640
    assert host.file("/usr/local/bin/temporal").is_symlink
    assert "edited by hand" not in host.file("/etc/systemd/system/temporal-dev-server.service").content_string
    for queue in QUEUES:
        assert host.service(f"temporal-worker@{queue}").is_running, queue
    assert host.service("temporal-dev-server").is_running


SCHEDULES_PLAYBOOK = scenario_dir() / "schedules.yml"
SCHEDULE = CONVERGE_VARS["temporal_worker_schedules"][0]
SCHEDULES_RECORD = "/var/lib/temporal-workers/schedules-made"


def describe_schedule(host, schedule_id: str):
    result = host.run(f"temporal schedule describe --schedule-id {schedule_id} --address {ADDRESS} -o json")
    return json.loads(result.stdout) if result.rc == 0 else None


def apply_schedules(*args: str, schedules: list[dict[str, object]]):
    return run_playbook(SCHEDULES_PLAYBOOK, *args, extra_vars={"temporal_worker_schedules": schedules})


def schedule_task_changed(run) -> bool:
    section = run.output.split("Make the Temporal schedules what temporal_worker_schedules lists", 1)[1].split("TASK [", 1)[0]
    return "changed:" in section


def test_a_schedule_as_code_fires_is_updated_in_place_and_pruned_leaving_hand_made_ones(host):
    """The converge's schedule starts BalancesWorkflow on the sagas workers; the list is the truth, by hand is left alone."""
    sid = SCHEDULE["id"]
    described = describe_schedule(host, sid)
    assert described, f"the converge did not create schedule {sid}"
    assert "durable.temporal.managed" in described["memo"]["fields"]
    assert described["schedule"]["spec"]["interval"] == [{"interval": "5s"}]
    assert host.file(SCHEDULES_RECORD).exists, "no record that this host made schedules"
    created = described["info"]["createTime"]

    def a_run_completed():
        actions = (describe_schedule(host, sid) or {}).get("info", {}).get("recentActions", [])
        for action in actions:
            run = temporal_json(host, f"workflow describe --workflow-id {action['startWorkflowResult']['workflowId']}")
            info = run["workflowExecutionInfo"]
            if info["type"]["name"] == "BalancesWorkflow" and info["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED":
                return info["execution"]["workflowId"]
        return None

    wait_for(a_run_completed, 60, f"a completed BalancesWorkflow started by schedule {sid}")

    host.run_expect([0], f"temporal schedule create --schedule-id by-hand --interval 1h --type BalancesWorkflow --task-queue sagas --paused --address {ADDRESS}")
    try:
        changed = [SCHEDULE | {"interval": "7s"}]
        check = apply_schedules("--check", "--diff", schedules=changed)
        assert check.returncode == 0 and schedule_task_changed(check), check.output[-3000:]
        assert re.search(r"^-\s+interval: 5s$", check.output, re.M) and re.search(r"^\+\s+interval: 7s$", check.output, re.M), check.output[-3000:]
        assert describe_schedule(host, sid)["schedule"]["spec"]["interval"] == [{"interval": "5s"}], "--check changed the schedule"

        updated = apply_schedules(schedules=changed)
        assert updated.returncode == 0 and schedule_task_changed(updated), updated.output[-3000:]
        after = describe_schedule(host, sid)
        assert after["schedule"]["spec"]["interval"] == [{"interval": "7s"}]
        assert after["info"]["createTime"] == created, "the schedule was made anew instead of updated in place"
        assert after["info"]["updateTime"] != described["info"].get("updateTime")

        again = apply_schedules(schedules=changed)
        assert again.returncode == 0 and not schedule_task_changed(again), again.output[-3000:]

        bad = SCHEDULE | {"interval": None, "cron": "0 25 * * *"}
        refused = run_playbook(
            scenario_dir() / "converge.yml",
            extra_vars={"temporal_worker_schedules": [bad], "temporal_dev_server_data_dir": "/var/lib/must-not-exist"},
        )
        assert refused.returncode != 0 and "hour 25 is out of range 0-23" in refused.output, refused.output[-3000:]
        assert not host.file("/var/lib/must-not-exist").exists, "a bad cron expression let the preset change the host"
        assert describe_schedule(host, sid)["schedule"]["spec"]["interval"] == [{"interval": "7s"}]

        removed = apply_schedules(schedules=[])
        assert removed.returncode == 0 and schedule_task_changed(removed), removed.output[-3000:]
        assert describe_schedule(host, sid) is None, f"schedule {sid} is still there"
        assert describe_schedule(host, "by-hand"), "a schedule made by hand was deleted"
        # All pruned: the record goes, and the next run with none listed does not ask the server.
        assert not host.file(SCHEDULES_RECORD).exists
        idle = apply_schedules(schedules=[])
        assert idle.returncode == 0 and not schedule_task_changed(idle), idle.output[-3000:]
        assert "skipping:" in idle.output.split("Make the Temporal schedules what temporal_worker_schedules lists", 1)[1].split("TASK [", 1)[0]
    finally:
        host.run(f"temporal schedule delete --schedule-id by-hand --address {ADDRESS}")
        restored = apply_schedules(schedules=[SCHEDULE])
        assert restored.returncode == 0, restored.output[-3000:]


def test_absent_removes_units_services_binaries_and_keeps_data_then_present_restores_history(host, completed_order):
    removed = run_playbook(scenario_dir() / "remove.yml")
    assert removed.returncode == 0, removed.output[-4000:]
    for unit in ("temporal-dev-server.service", "temporal-worker@.service"):
        assert not host.file(f"/etc/systemd/system/{unit}").exists
    for service in SERVICES:
        assert not host.service(service).is_running, f"{service} still runs"
    assert not host.file("/etc/systemd/system/temporal-api.service").exists
    assert not host.user("temporal-api").exists
    for path in ("/usr/local/bin/temporal", "/opt/temporal-cli", "/opt/temporal-workers", "/opt/temporal-api", "/usr/bin/prometheus", PROMETHEUS_DROPIN):
        assert not host.file(path).exists, f"{path} is left behind"
    for path in ("/var/lib/temporal-dev/temporal.db", "/var/lib/temporal-workers/store.db", "/var/lib/prometheus"):
        assert host.file(path).exists, f"absent must keep {path}"

    again = run_playbook(scenario_dir() / "remove.yml")
    assert again.returncode == 0 and all(c["changed"] == 0 for c in again.recap().values()), again.output[-3000:]

    restored = run_playbook(scenario_dir() / "converge.yml")
    assert restored.returncode == 0, restored.output[-4000:]
    info = temporal_json(host, f"workflow describe --workflow-id {completed_order}")
    assert info["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"
