"""Turning the figures into a table on stdout, targets and a chart."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

# Within this share of the best throughput, tuning points count as equally fast (run-to-run
# noise is ~25%): among them the lowest worker CPU per workflow wins, since on 2 cores the
# CPU a worker does not use goes to the dev server, the bottleneck.
TUNING_TIE = 0.9


def say(message: str) -> None:
    """Progress on stderr, so stdout carries only the table."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def best_tuning(points: dict[str, dict[str, Any]]) -> dict[str, Any]:
    fastest = max(p["workflows_per_s"] for p in points.values())
    contenders = {n: p for n, p in points.items() if p["workflows_per_s"] >= TUNING_TIE * fastest}
    name = min(contenders, key=lambda n: contenders[n]["worker_cpu_ms_per_wf"] or float("inf"))
    return {
        "name": name,
        "rule": f"lowest worker CPU/workflow among points within {TUNING_TIE} of the fastest",
    }


def _status(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def _target(name: str, figure: float | None, limit: float, at_most: bool = False) -> dict[str, Any]:
    within = None if figure is None else (figure <= limit if at_most else figure >= limit)
    return {
        "target": name,
        "figure": figure,
        "limit": f"{'<=' if at_most else '>='} {limit}",
        "status": _status(within),
    }


def targets(
    results: dict[str, Any],
    *,
    idempotent_max: float,
    bundled_min: float,
    durable_min: float,
    production_min: float,
    recovery_max_s: float,
) -> list[dict[str, Any]]:
    out = [
        _target(
            "idempotent re-run / first converge",
            results["deploy"]["second_over_first"],
            idempotent_max,
            at_most=True,
        )
    ]
    if "throughput" in results:
        figure = results["throughput"]["bundled_over_bare"]
        out.append(_target("bundled / bare-SDK worker throughput", figure, bundled_min))
    if "persistence" in results:
        durable = next(
            v for n, v in results["persistence"]["variants"].items() if "role default" in n
        )
        name = "durable (role default) / in-memory throughput"
        out.append(_target(name, durable["over_in_memory"], durable_min))
        # The same target with the machine's speed changes taken out (see the table's note):
        # printed beside the raw figure, never instead of it.
        figure = durable["speed_adjusted_over_in_memory"]
        out.append(_target("  the same, speed-adjusted", figure, durable_min))
    if "production" in results:
        production = results["production"]
        default = production["variants"][production["default"]]
        out.append(
            _target(
                "production (role defaults) / dev server throughput",
                default["over_dev"],
                production_min,
            )
        )
    if "recovery" in results:
        name = "activity of a SIGKILLed worker running again elsewhere, worst round (s)"
        out.append(_target(name, results["recovery"]["max_s"], recovery_max_s, at_most=True))
    return out


def api_targets(
    results: dict[str, Any], starts_min: float, added_p50_max: float
) -> list[dict[str, Any]]:
    if "api" not in results:
        return []
    api = results["api"]
    return [
        _target("API / SDK client start throughput", api["starts_api_over_sdk"], starts_min),
        _target(
            "p50 an order gains through the API",
            api["order_p50_added"],
            added_p50_max,
            at_most=True,
        ),
    ]


def api_table(results: dict[str, Any]) -> None:
    if "api" not in results:
        return
    api = results["api"]
    status = {t["target"]: t["status"] for t in results["targets"]}
    print(f"\n== HTTP API ({api['uvicorn_workers']} uvicorn workers) against the SDK client")
    rows = []
    for kind in ("starts", "orders"):
        for name in ("api", "sdk"):
            f = api[kind][name]
            rows.append(
                [
                    f"{kind}, {name}",
                    _fmt(f["per_s"]),
                    _fmt(f["p50_ms"], 0),
                    _fmt(f["p95_ms"], 0),
                    str(f["failures"]),
                ]
            )
    _rows(["", "per s", "p50 ms", "p95 ms", "failed"], rows)
    _api_cpu(api)
    for workers, other in results.get("api_by_workers", {}).items():
        if other is not api:
            print(
                f"  with {workers} uvicorn workers: API / SDK starts "
                f"{_fmt(other['starts_api_over_sdk'], 2)}, order p50 added "
                f"{_fmt(other['order_p50_added'], 3)}"
            )
            _api_cpu(other)
    print(
        f"  API / SDK starts {_fmt(api['starts_api_over_sdk'], 2)}  "
        + status["API / SDK client start throughput"]
    )
    print(
        f"  order p50 added {_fmt(api['order_p50_added'], 3)}  "
        + status["p50 an order gains through the API"]
    )


def _api_cpu(api: dict[str, Any]) -> None:
    """Where a workflow's CPU went: ms per workflow of the load client, the API, the server."""
    rows = []
    for kind in ("starts", "orders"):
        for name in ("api", "sdk"):
            per_wf = api[kind][name].get("cpu_ms_per_wf", {})
            if per_wf:
                cells = [_fmt(per_wf.get(k), 2) for k in ("client", "api", "server", "worker")]
                rows.append([f"{kind}, {name}", *cells])
    if rows:
        print(f"  CPU ms per workflow ({api['uvicorn_workers']} uvicorn workers)")
        _rows(["", "client", "api", "server", "worker"], rows)


# --- the table ----------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _rows(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        print("  " + "  ".join(cells).rstrip())


POINT_HEADERS = ["wf/s", "p50 ms", "p95 ms", "worker CPU ms/wf", "server CPU ms/wf", "failed"]


def _point(p: dict[str, Any]) -> list[str]:
    return [
        _fmt(p["workflows_per_s"]),
        _fmt(p["p50_ms"], 0),
        _fmt(p["p95_ms"], 0),
        _fmt(p["worker_cpu_ms_per_wf"]),
        _fmt(p["server_cpu_ms_per_wf"]),
        str(p["failures"]),
    ]


def table(results: dict[str, Any]) -> None:
    machine, settings = results["machine"], results["settings"]
    print(
        f"\n== durable.temporal benchmark, {results['date']}: {machine['nproc']} cores, "
        f"{machine['memory_gib']} GiB, "
        f"load average at start {machine['load_average_at_start'][0]:.2f}"
    )
    print(
        f"   {settings['workflows_per_point']} orders per point, at most "
        f"{settings['max_in_flight']} in flight, {settings['rounds']} interleaved rounds "
        "for compared points; run-to-run noise ~25%: CPU per workflow is the stable signal"
    )
    status = {t["target"]: f"{t['limit']}  {t['status']}" for t in results["targets"]}

    d = results["deploy"]
    bare = d["bare_installs_s"]
    print("\n== Deploy: durable.temporal.stack, no role variables, onto a bare systemd container")
    _rows(
        ["step", "seconds", "tasks", "changed", "figure"],
        [
            [
                "first converge",
                _fmt(d["first_converge_s"]),
                str(d["first_tasks"]),
                str(d["first_changed"]),
                "",
            ],
            [
                "idempotent re-run (median)",
                _fmt(d["second_converge_s"]),
                str(d["second_tasks"]),
                str(d["second_changed"]),
                f"{d['second_over_first']:.2f} of first  "
                + status["idempotent re-run / first converge"],
            ],
            ["bare package installs (script)", _fmt(bare["total"]), "", "", ""],
            ["first converge / bare installs", "", "", "", f"{d['first_over_bare']:.2f}"],
        ],
    )
    reruns = ", ".join(f"{s:.1f}" for s in d.get("rerun_converges_s", []))
    if reruns:
        print(f"  idempotent re-runs (s): {reruns}")
    phases = ", ".join(f"{k} {v:.1f}" for k, v in bare.items() if k != "total")
    print(f"  bare installs by phase (s): {phases}")
    for which in ("first", "second"):
        slowest = d[f"{which}_slowest_tasks"][:5]
        if slowest:
            label = "first converge" if which == "first" else "median re-run"
            print(f"  slowest tasks of the {label} (s):")
            for task in slowest:
                print(f"    {task['seconds']:6.1f}  {task['task']}")

    if "throughput" in results:
        t = results["throughput"]
        print("\n== Throughput: OrderWorkflow (4 activities), same server, same run")
        _rows(
            ["worker", *POINT_HEADERS],
            [["bundled (deployed)", *_point(t["bundled"])], ["bare SDK", *_point(t["bare_sdk"])]],
        )
        print(
            f"  bundled / bare throughput {_fmt(t['bundled_over_bare'], 2)}  "
            + status["bundled / bare-SDK worker throughput"]
            + f"; worker CPU bundled / bare {_fmt(t['cpu_bundled_over_bare'], 2)}"
        )

        print("\n== Footprint after the throughput run (MiB)")
        _rows(
            ["service", "MemoryCurrent", "RSS"],
            [
                [unit, _fmt(m["memory_current_mib"]), _fmt(m["rss_mib"])]
                for unit, m in results["footprint"].items()
            ],
        )

    if "production" in results:
        _production_table(results["production"], status)

    if "persistence" in results:
        variants = results["persistence"]["variants"]
        print("\n== Persistence: the dev server per SQLite setting (bundled worker)")
        _rows(
            ["variant", *POINT_HEADERS, "/ memory", "speed-adj.", "kept over restart"],
            [
                [
                    name,
                    *_point(v),
                    _fmt(v["over_in_memory"], 2),
                    _fmt(v["speed_adjusted_over_in_memory"], 2),
                    _fmt(v["survives_restart"]),
                ]
                for name, v in variants.items()
            ],
        )
        print(
            "  speed-adj.: throughput x the worker's CPU per workflow, against in memory; the\n"
            "  worker's work per workflow is the same in every variant, so this takes out the\n"
            "  machine's own speed changes"
        )
        for name, v in variants.items():
            print(f"  {name}: durability {v['durability']}")
        print(
            "  durable (role default) / in memory: "
            + status["durable (role default) / in-memory throughput"]
        )
        _applied("a variant", results["persistence"]["apply_converge_s"])

    if "tuning" in results:
        tuning = results["tuning"]
        print(
            "\n== Tuning: temporal_worker_settings, each applied by re-converging the worker role"
        )
        _rows(
            ["setting", *POINT_HEADERS, "temporal_worker_settings"],
            [
                [name, *_point(p), str(p["temporal_worker_settings"] or "{}")]
                for name, p in tuning["settings"].items()
            ],
        )
        best = tuning["best"]
        print(f"  best for {machine['nproc']} cores: {best['name']} ({best['rule']})")
        _applied("a setting", tuning["apply_converge_s"])

    if "recovery" in results:
        r = results["recovery"]
        print("\n== Recovery: SIGKILL the worker running ship_order, until another worker runs it")
        print(
            f"  {r['rounds']} rounds, heartbeat timeout {r['heartbeat_timeout_s']} s: "
            f"median {r['p50_s']} s, worst {r['max_s']} s ({', '.join(map(str, r['seconds']))})"
        )

    print("\n== Targets (a MISS is reported, never fatal)")
    _rows(
        ["target", "figure", "limit", "status"],
        [[t["target"], _fmt(t["figure"], 2), t["limit"], t["status"]] for t in results["targets"]],
    )


def _production_table(production: dict[str, Any], status: dict[str, str]) -> None:
    variants = production["variants"]
    print(
        "\n== Production: temporal-server + PostgreSQL (same host) against the dev server, "
        "same load, interleaved rounds per variant"
    )
    _rows(
        [
            "variant",
            "wf/s",
            "dev wf/s",
            "/ dev",
            "p50 ms",
            "p95 ms",
            "transitions/s",
            "server cores",
            "pg cores",
            "idle cores",
            "server RSS",
            "pg PSS",
            "failed",
        ],
        [
            [
                name,
                _fmt(v["workflows_per_s"]),
                _fmt(v["dev"]["workflows_per_s"]),
                _fmt(v["over_dev"], 2),
                _fmt(v["p50_ms"], 0),
                _fmt(v["p95_ms"], 0),
                _fmt(v.get("state_transitions_per_s"), 0),
                _fmt(v.get("server_cpu_cores"), 2),
                _fmt(v.get("db_cpu_cores"), 2),
                _fmt(sum(v["idle_cpu_cores"].values()), 2),
                _fmt(v["memory"].get("temporal-server", {}).get("rss_mib"), 0),
                _fmt(_pg_memory(v), 0),
                str(v["failures"]),
            ]
            for name, v in variants.items()
        ],
    )
    dev = next(iter(variants.values()))["dev"]
    print(
        f"  dev server: {_fmt(dev.get('state_transitions_per_s'), 0)} transitions/s, "
        f"{_fmt(dev.get('server_cpu_cores'), 2)} cores (first variant's rounds); "
        "cores: CPU seconds / wall seconds of the run; idle: with no load, server + pg"
    )
    for name, v in variants.items():
        pg = ", ".join(f"{k}={val}" for k, val in v["postgresql"].items())
        print(f"  {name}: {v['num_history_shards']} shards, TLS {_fmt(v['tls'])}; PostgreSQL {pg}")
    print(
        f"  production ({production['default']}) / dev: "
        + status["production (role defaults) / dev server throughput"]
    )


def _pg_memory(variant: dict[str, Any]) -> float | None:
    memory = [m for unit, m in variant["memory"].items() if unit.startswith("postgresql")]
    return memory[0]["pss_mib"] if memory else None


def _applied(what: str, seconds: list[float]) -> None:
    if seconds:
        print(
            f"  applying {what} (a role converge): {min(seconds):.0f} to {max(seconds):.0f} s, "
            f"{len(seconds)} converges"
        )


# --- the chart ----------------------------------------------------------------------------


def chart(results: dict[str, Any], path: Path) -> None:
    # Imported here: matplotlib is the bench's own requirement, and needs its headless
    # backend chosen before pyplot loads.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = 3 if "production" in results else 2
    fig, axes = plt.subplots(rows, 3, figsize=(18, 5 * rows), layout="constrained")
    machine = results["machine"]
    fig.suptitle(
        f"durable.temporal benchmark {results['date'][:10]} - {machine['nproc']} cores, "
        f"{machine['memory_gib']} GiB, {results['settings']['workflows_per_point']} orders/point"
    )
    d = results["deploy"]
    _bars(
        axes[0][0],
        {
            "first converge": d["first_converge_s"],
            "idempotent re-run (median)": d["second_converge_s"],
            "bare installs": d["bare_installs_s"]["total"],
        },
        ylabel="seconds",
        title=f"Deploy: wall time (first / bare installs {d['first_over_bare']:.1f})",
        fmt="{:.0f} s",
    )
    panels = [
        (axes[0][1], "throughput", _throughput_panel),
        (axes[0][2], "throughput", _latency_panel),
        (axes[1][0], "persistence", _persistence_panel),
        (axes[1][1], "tuning", _tuning_panel),
        (axes[1][2], "footprint", _footprint_panel),
    ]
    if rows == 3:
        panels += [
            (axes[2][0], "production", _production_panel),
            (axes[2][1], "production", _production_cpu_panel),
            (axes[2][2], "production", _production_latency_panel),
        ]
    for ax, section, draw in panels:
        if section in results:
            draw(ax, results[section])
        else:
            ax.set_visible(False)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _throughput_panel(ax: Any, t: dict[str, Any]) -> None:
    points = {"bundled": t["bundled"], "bare SDK": t["bare_sdk"]}
    _bars(
        ax,
        {name: p["workflows_per_s"] for name, p in points.items()},
        ylabel="workflows / s",
        title=f"Throughput (bundled / bare {_fmt(t['bundled_over_bare'], 2)}); line: CPU",
        fmt="{:.1f}",
    )
    _cpu_line(ax, points, "worker_cpu_ms_per_wf", "worker CPU ms / workflow")


def _latency_panel(ax: Any, t: dict[str, Any]) -> None:
    points = {"bundled": t["bundled"], "bare SDK": t["bare_sdk"]}
    x = range(len(points))
    for offset, key, label in ((-0.2, "p50_ms", "p50"), (0.2, "p95_ms", "p95")):
        bars = ax.bar([i + offset for i in x], [p[key] for p in points.values()], 0.4, label=label)
        ax.bar_label(bars, [f"{p[key]:.0f}" for p in points.values()])
    ax.set_xticks(list(x), list(points))
    ax.set_ylabel("ms, start to result")
    ax.set_title("Latency per workflow")
    ax.legend()


def _persistence_panel(ax: Any, persistence: dict[str, Any]) -> None:
    # The variant names are long; a line break keeps the tick labels apart.
    variants = {
        n.replace(" (", "\n(").replace(", ", ",\n").replace(" and ", "\nand "): v
        for n, v in persistence["variants"].items()
    }
    _bars(
        ax,
        {name: v["workflows_per_s"] for name, v in variants.items()},
        ylabel="workflows / s",
        title="Persistence: dev server SQLite; line: server CPU",
        fmt="{:.1f}",
    )
    _cpu_line(ax, variants, "server_cpu_ms_per_wf", "server CPU ms / workflow")
    # Six variants, some with four-line names: at the default size they run into each other.
    ax.tick_params(axis="x", labelsize=7)


def _tuning_panel(ax: Any, tuning: dict[str, Any]) -> None:
    settings = tuning["settings"]
    _bars(
        ax,
        {name: p["workflows_per_s"] for name, p in settings.items()},
        ylabel="workflows / s",
        title=f"Tuning (best: {tuning['best']['name']}); line: worker CPU",
        fmt="{:.1f}",
    )
    _cpu_line(ax, settings, "worker_cpu_ms_per_wf", "worker CPU ms / workflow")


def _production_names(production: dict[str, Any], ratio: bool = False) -> list[str]:
    return [
        n.replace(": ", ":\n").replace(", ", ",\n")
        + (f"\n{_fmt(v['over_dev'], 2)} of dev" if ratio else "")
        for n, v in production["variants"].items()
    ]


def _production_panel(ax: Any, production: dict[str, Any]) -> None:
    variants = production["variants"]
    names = _production_names(production, ratio=True)
    x = range(len(names))
    for offset, label, values in (
        (-0.2, "production", [v["workflows_per_s"] for v in variants.values()]),
        (0.2, "dev server, same rounds", [v["dev"]["workflows_per_s"] for v in variants.values()]),
    ):
        bars = ax.bar([i + offset for i in x], values, 0.4, label=label)
        ax.bar_label(bars, [f"{v:.1f}" for v in values])
    ax.set_xticks(list(x), names)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_ylabel("workflows / s")
    ax.set_title("Production (PostgreSQL) vs dev server in the same rounds")
    ax.legend(fontsize=8)
    ax.margins(y=0.15)


def _production_cpu_panel(ax: Any, production: dict[str, Any]) -> None:
    variants = production["variants"]
    names = _production_names(production)
    server = [v.get("server_cpu_cores") or 0.0 for v in variants.values()]
    pg = [v.get("db_cpu_cores") or 0.0 for v in variants.values()]
    ax.bar(names, server, label="temporal-server")
    ax.bar(names, pg, bottom=server, label="PostgreSQL")
    idle = [sum(v["idle_cpu_cores"].values()) for v in variants.values()]
    ax.plot(names, idle, "o-", color="black", label="both, idle")
    ax.set_ylabel("cores (CPU s / wall s)")
    ax.set_title("Production: CPU under load and idle")
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=8)


def _production_latency_panel(ax: Any, production: dict[str, Any]) -> None:
    variants = production["variants"]
    names = _production_names(production)
    x = range(len(names))
    for offset, key, label in ((-0.2, "p50_ms", "p50"), (0.2, "p95_ms", "p95")):
        values = [v[key] for v in variants.values()]
        bars = ax.bar([i + offset for i in x], values, 0.4, label=label)
        ax.bar_label(bars, [f"{v:.0f}" for v in values], fontsize=7)
    ax.set_xticks(list(x), names)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_ylabel("ms, start to result")
    ax.set_title("Production latency per workflow")
    ax.legend(fontsize=8)


def _cpu_line(ax: Any, points: dict[str, Any], key: str, label: str) -> None:
    """CPU per workflow on a second axis: the signal that stays put when throughput is noisy."""
    twin = ax.twinx()
    cpu = [p[key] or 0.0 for p in points.values()]
    twin.plot(list(points), cpu, "o-", color="black")
    for x, value in enumerate(cpu):
        twin.annotate(f"{value:.0f}", (x, value), textcoords="offset points", xytext=(8, -12))
    twin.set_ylabel(label)
    # Headroom above the line keeps its labels clear of the bar labels.
    twin.set_ylim(bottom=0, top=max(cpu) * 1.8 or 1)


def _footprint_panel(ax: Any, footprint: dict[str, Any]) -> None:
    units = [u.removeprefix("temporal-") for u in footprint]
    mib = [m["memory_current_mib"] or 0.0 for m in footprint.values()]
    ax.barh(units, mib, color="C2")
    ax.invert_yaxis()
    ax.set_xlabel("MiB (systemd MemoryCurrent)")
    ax.set_title("Memory per service after the load")
    for i, value in enumerate(mib):
        ax.text(value, i, f" {value:.0f}", va="center")
    ax.margins(x=0.15)


def _bars(ax: Any, values: dict[str, float], *, ylabel: str, title: str, fmt: str) -> None:
    bars = ax.bar(list(values), list(values.values()), color=[f"C{i}" for i in range(len(values))])
    ax.bar_label(bars, [fmt.format(v) for v in values.values()])
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.tick_params(axis="x", labelsize=9)
    ax.margins(y=0.15)
