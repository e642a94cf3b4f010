#!/usr/bin/env python3
"""Writes the bzzz Grafana dashboards (deploy/grafana/dashboards/*.json).

The JSON files are generated: edit this file, then run
  python3 deploy/grafana/generate.py deploy/grafana/dashboards
tests/deploy/check_rules.sh fails when the committed JSON differs from what
this script writes.
"""
import json
import sys
from pathlib import Path

OUT = Path(sys.argv[1])
DS = {"type": "prometheus", "uid": "${datasource}"}
S = 'job="$job", instance=~"$instance"'
RI = "$__rate_interval"


def templating():
    return {
        "list": [
            {
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "hide": 0,
                "refresh": 1,
                "regex": "",
                "options": [],
            },
            {
                "name": "job",
                "label": "Job",
                "type": "query",
                "datasource": DS,
                "definition": "label_values(bzzz_system_health_score, job)",
                "query": {"query": "label_values(bzzz_system_health_score, job)", "refId": "job"},
                "current": {"selected": True, "text": "bzzz", "value": "bzzz"},
                "refresh": 2,
                "sort": 1,
                "hide": 0,
                "includeAll": False,
                "multi": False,
                "options": [],
                "regex": "",
            },
            {
                "name": "instance",
                "label": "Instance",
                "type": "query",
                "datasource": DS,
                "definition": 'label_values(up{job="$job"}, instance)',
                "query": {"query": 'label_values(up{job="$job"}, instance)', "refId": "instance"},
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                "refresh": 2,
                "sort": 1,
                "hide": 0,
                "includeAll": True,
                "allValue": ".*",
                "multi": True,
                "options": [],
                "regex": "",
            },
        ]
    }


class Board:
    def __init__(self, uid, title, description):
        self.uid, self.title, self.description = uid, title, description
        self.panels = []
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def row(self, title):
        if self.x:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0
        self.panels.append({
            "id": self.next_id, "type": "row", "title": title, "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": [],
        })
        self.next_id += 1
        self.y += 1

    def panel(self, kind, title, description, targets, unit="short", w=12, h=8, extra_defaults=None,
              options=None, mappings=None, thresholds=None, min_=None, max_=None):
        if self.x + w > 24:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0
        defaults = {"unit": unit}
        if min_ is not None:
            defaults["min"] = min_
        if max_ is not None:
            defaults["max"] = max_
        if mappings:
            defaults["mappings"] = mappings
        if thresholds:
            defaults["thresholds"] = {"mode": "absolute", "steps": thresholds}
        if kind == "timeseries":
            defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
                                  "spanNulls": False}
            if thresholds:
                defaults["custom"]["thresholdsStyle"] = {"mode": "line"}
        if extra_defaults:
            defaults.update(extra_defaults)
        refs = "ABCDEFGH"
        p = {
            "id": self.next_id,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
            "targets": [
                {"refId": refs[i], "datasource": DS, "expr": expr, "legendFormat": legend,
                 **({"instant": True, "format": "table"} if kind == "table" else {})}
                for i, (expr, legend) in enumerate(targets)
            ],
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": options or {},
        }
        if kind == "timeseries" and not options:
            p["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                            "tooltip": {"mode": "multi", "sort": "desc"}}
        if kind == "stat" and not options:
            p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                            "colorMode": "value", "graphMode": "none", "textMode": "auto", "justifyMode": "auto",
                            "orientation": "auto"}
        self.panels.append(p)
        self.next_id += 1
        self.x += w
        self.row_h = max(self.row_h, h)

    def write(self):
        board = {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["bzzz"],
            "timezone": "utc",
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": 37,
            "version": 1,
            "refresh": "30s",
            "time": {"from": "now-1h", "to": "now"},
            "timepicker": {},
            "fiscalYearStartMonth": 0,
            "liveNow": False,
            "links": [{"title": "bzzz dashboards", "type": "dashboards", "tags": ["bzzz"], "asDropdown": True,
                       "includeVars": True, "keepTime": True}],
            "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
                "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
                "type": "dashboard"}]},
            "templating": templating(),
            "panels": self.panels,
        }
        (OUT / f"{self.uid}.json").write_text(json.dumps(board, indent=2) + "\n")


def ratio_or_zero(num_sel, den_sel, by):
    """num/den per `by`, 0 (not empty) where den has data and num has none."""
    num = f"sum by ({by}) (rate(no_http_requests_total{{{num_sel}}}[{RI}]))"
    den = f"sum by ({by}) (rate(no_http_requests_total{{{den_sel}}}[{RI}]))"
    return f"({num} or {den} * 0) / {den}"


GREEN_RED = [{"color": "red", "value": None}, {"color": "orange", "value": 0.5}, {"color": "green", "value": 1}]
ELECTION_MAP = [{"type": "value", "options": {
    "0": {"text": "follower", "color": "blue", "index": 0},
    "1": {"text": "candidate", "color": "orange", "index": 1},
    "2": {"text": "admin", "color": "green", "index": 2}}}]

# ---------------------------------------------------------------- overview
b = Board("bzzz-overview", "bzzz / System overview",
          "Cluster health at a glance: targets, admin, alerts, SLIs, health scores, traffic and resources.")
b.row("Cluster")
b.panel("stat", "Targets up", "Nodes and bootstrap nodes Prometheus scrapes successfully (up == 1).",
        [(f'sum(up{{{S}}})', "up")], w=4, h=4)
b.panel("stat", "Targets down", "Targets whose last scrape failed. ServiceDown fires after a minute.",
        [(f'count(up{{{S}}} == 0) or vector(0)', "down")], w=4, h=4,
        thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}])
b.panel("stat", "Admin elected", "Highest bzzz_election_state of the job: 2 means a node reports itself admin. "
        "BZZZNoAdminElected fires when this stays below 2 for 30 s.",
        [('max(bzzz_election_state{job="$job"}) or vector(0)', "admin")], w=4, h=4,
        mappings=[{"type": "value", "options": {"2": {"text": "yes", "color": "green", "index": 0},
                                                "1": {"text": "election running", "color": "orange", "index": 1},
                                                "0": {"text": "no", "color": "red", "index": 2}}}])
b.panel("stat", "Alerts firing", "Alerts of this Prometheus in state firing (all rule groups).",
        [('sum(ALERTS{alertstate="firing"}) or vector(0)', "firing")], w=4, h=4,
        thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}])
b.panel("stat", "Health checks passing (SLI)", "Recording rule bzzz:health_check_success_rate: passed check runs over "
        "all runs in 5 minutes, whole cluster.",
        [("bzzz:health_check_success_rate", "pass ratio")], unit="percentunit", w=4, h=4, min_=0, max_=1,
        thresholds=[{"color": "red", "value": None}, {"color": "orange", "value": 0.9}, {"color": "green", "value": 0.99}])
b.panel("stat", "DHT success rate (SLI)", "Recording rule bzzz:dht_success_rate: successful DHT puts and gets (a get "
        "of a missing record counts as an answer) over all, 5 minutes, whole cluster. Error budget: 1%.",
        [("bzzz:dht_success_rate", "success")], unit="percentunit", w=4, h=4, min_=0, max_=1,
        thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 0.99}])
b.row("Health")
b.panel("timeseries", "System health score", "1 healthy, 0.5 degraded, 0 unhealthy. BZZZSystemHealthCritical fires "
        "below 0.5 for 2 minutes.", [(f"bzzz_system_health_score{{{S}}}", "{{instance}}")], min_=0, max_=1,
        thresholds=GREEN_RED)
b.panel("timeseries", "Component health score", "The same per health check (component = check name).",
        [(f"bzzz_component_health_score{{{S}}}", "{{instance}} {{component}}")], min_=0, max_=1)
b.row("Traffic")
b.panel("timeseries", "Request rate", "HTTP responses per second per node.",
        [(f"sum by (instance) (rate(no_http_requests_total{{{S}}}[{RI}]))", "{{instance}}")], unit="reqps", w=8)
b.panel("timeseries", "5xx ratio", "Share of responses with status 5xx per node (0 when there were none).",
        [(ratio_or_zero(f'{S}, status=~"5.."', S, "instance"), "{{instance}}")], unit="percentunit", w=8, min_=0)
b.panel("timeseries", "Response time p95", "95th percentile of HTTP response time per node. HighResponseTime fires "
        "above 2 s for 5 minutes; the nO KPI is 500 ms.",
        [(f"histogram_quantile(0.95, sum by (instance, le) (rate(no_http_request_duration_seconds_bucket{{{S}}}[{RI}])))",
          "{{instance}}")], unit="s", w=8,
        thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 0.5}, {"color": "red", "value": 2}])
b.panel("timeseries", "Errors by component", "bzzz_errors_total per second by component (http: 5xx responses; "
        "health: checks that threw or timed out; p2p, dht).",
        [(f"sum by (component) (rate(bzzz_errors_total{{{S}}}[{RI}]))", "{{component}}")], w=8)
b.panel("timeseries", "Connected peers", "Peers in each node's peer table, bootstrap nodes included. "
        "BZZZInsufficientPeers fires below 3 for 5 minutes.",
        [(f"bzzz_p2p_connected_peers{{{S}}}", "{{instance}}")], w=8,
        thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 3}])
b.panel("timeseries", "Task queue depth", "Tasks each node owns that are ready or waiting to retry.",
        [(f"no_task_queue_depth{{{S}}}", "{{instance}}")], w=8)
b.row("Resources")
b.panel("timeseries", "Memory usage ratio", "Resident memory over the memory the process may use. HighMemoryUsage "
        "fires above 85% for 10 minutes.", [(f"no_memory_usage_ratio{{{S}}}", "{{instance}}")], unit="percentunit",
        w=6, min_=0, thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 0.85}])
b.panel("timeseries", "Resident memory", "process_resident_memory_bytes per node.",
        [(f"process_resident_memory_bytes{{{S}}}", "{{instance}}")], unit="bytes", w=6)
b.panel("timeseries", "CPU", "CPU seconds used per second (1 = one core busy).",
        [(f"rate(process_cpu_seconds_total{{{S}}}[{RI}])", "{{instance}}")], w=6)
b.panel("timeseries", "Uptime", "Time since each process started.",
        [(f"time() - process_start_time_seconds{{{S}}}", "{{instance}}")], unit="s", w=6)
b.write()

# ---------------------------------------------------------------- agents and tasks
b = Board("bzzz-agents-tasks", "bzzz / Agent pool and tasks",
          "The agent pool of each node and the tasks it owns (nO master agent loop metrics).")
b.row("Agent pool")
b.panel("timeseries", "Agents", "Agents in the selected nodes' pools by state: active runs an attempt, idle waits, "
        "failed is in error and restarting.",
        [(f"sum(no_agent_pool_size{{{S}}})", "size"), (f"sum(no_agent_pool_active{{{S}}})", "active"),
         (f"sum(no_agent_pool_idle{{{S}}})", "idle"), (f"sum(no_agent_pool_failed{{{S}}})", "failed")], w=8)
b.panel("timeseries", "Healthy ratio", "(size - failed) / size per node; 1 for an empty pool. AgentPoolUnhealthy "
        "fires below 0.5 for 5 minutes.", [(f"no_agent_pool_healthy_ratio{{{S}}}", "{{instance}}")],
        unit="percentunit", w=8, min_=0, max_=1,
        thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 0.5}])
b.panel("timeseries", "Agent utilisation", "Busy agents over all agents per node (the nO runbook's target: 70-80%).",
        [(f"sum by (instance) (no_agent_pool_active{{{S}}}) / sum by (instance) (no_agent_pool_size{{{S}}})",
          "{{instance}}")], unit="percentunit", w=8, min_=0, max_=1)
b.panel("timeseries", "Agent performance score", "0.7 x smoothed success ratio + 0.3 x speed per agent; 0.5 "
        "without history.", [(f"no_agent_performance_score{{{S}}}", "{{instance}} {{agent}}")], w=12, min_=0, max_=1)
b.panel("timeseries", "Loop efficiency ratio", "Share of the attempts each node's agents finished that succeeded.",
        [(f"no_loop_efficiency_ratio{{{S}}}", "{{instance}}")], unit="percentunit", w=12, min_=0, max_=1)
b.row("Tasks")
b.panel("timeseries", "Task queue depth", "Tasks each node owns that are ready or waiting to retry.",
        [(f"no_task_queue_depth{{{S}}}", "{{instance}}")], w=8)
b.panel("timeseries", "Tasks entering each state", "Per second, all executors.",
        [(f"sum by (state) (rate(no_tasks_total{{{S}}}[{RI}]))", "{{state}}")], unit="ops", w=16)
b.panel("timeseries", "Task latency (acceptance to success)", "Percentiles by executor.",
        [(f"histogram_quantile(0.5, sum by (executor, le) (rate(no_task_latency_seconds_bucket{{{S}}}[{RI}])))",
          "p50 {{executor}}"),
         (f"histogram_quantile(0.95, sum by (executor, le) (rate(no_task_latency_seconds_bucket{{{S}}}[{RI}])))",
          "p95 {{executor}}")], unit="s", w=12)
b.panel("timeseries", "Master loop iteration p95", "One dispatch of ready tasks to waiting agents.",
        [(f"histogram_quantile(0.95, sum by (instance, le) (rate(no_loop_iteration_duration_seconds_bucket{{{S}}}[{RI}])))",
          "{{instance}}")], unit="s", w=12)
b.panel("table", "Outcomes in the time range", "Tasks that succeeded, failed an attempt, went to the dead-letter "
        "queue (bzzz dlq list) or were cancelled, by executor.",
        [(f'sum by (executor, state) (increase(no_tasks_total{{{S}, state=~"succeeded|failed|dead|cancelled"}}[$__range]))',
          "{{executor}} {{state}}")], w=12)
b.panel("timeseries", "Backpressure and store failures", "Submissions answered 429 (queue full or store behind) and "
        "failed group-commit writes, per second.",
        [(f"sum by (instance) (rate(no_task_submissions_rejected_total{{{S}}}[{RI}]))", "rejected {{instance}}"),
         (f"sum by (instance) (rate(no_task_store_write_failures_total{{{S}}}[{RI}]))", "write failures {{instance}}")],
        unit="ops", w=12)
b.write()

# ---------------------------------------------------------------- http
b = Board("bzzz-http", "bzzz / HTTP performance",
          "Requests, response times and connections of the HTTP API (nO request metrics).")
b.row("Requests")
b.panel("timeseries", "Requests per second by route", "Route templates; unmatched covers 404, 405, OPTIONS and "
        "parser rejections.", [(f"sum by (route) (rate(no_http_requests_total{{{S}}}[{RI}]))", "{{route}}")],
        unit="reqps")
b.panel("timeseries", "Requests per second by status", "",
        [(f"sum by (status) (rate(no_http_requests_total{{{S}}}[{RI}]))", "{{status}}")], unit="reqps")
b.row("Response time")
b.panel("timeseries", "Response time percentiles", "All routes of the selected nodes. nO KPIs: p50 < 100 ms, "
        "p95 < 500 ms, p99 < 1 s.",
        [(f"histogram_quantile({q}, sum by (le) (rate(no_http_request_duration_seconds_bucket{{{S}}}[{RI}])))", f"p{n}")
         for q, n in ((0.5, 50), (0.95, 95), (0.99, 99))], unit="s")
b.panel("timeseries", "Response time p95 by route", "Long polls (/api/v1/tasks/:id/events) and trigger-election "
        "wait by design.",
        [(f"histogram_quantile(0.95, sum by (route, le) (rate(no_http_request_duration_seconds_bucket{{{S}}}[{RI}])))",
          "{{route}}")], unit="s")
b.panel("timeseries", "Mean response time by route", "",
        [(f"sum by (route) (rate(no_http_request_duration_seconds_sum{{{S}}}[{RI}])) / "
          f"sum by (route) (rate(no_http_request_duration_seconds_count{{{S}}}[{RI}]))", "{{route}}")], unit="s")
b.panel("timeseries", "Share of requests under 500 ms", "Responses faster than 500 ms over all (the nO KPI: p95 "
        "< 500 ms means at least 95%).",
        [(f'sum(rate(no_http_request_duration_seconds_bucket{{{S}, le="0.5"}}[{RI}])) / '
          f"sum(rate(no_http_request_duration_seconds_count{{{S}}}[{RI}]))", "under 500 ms")],
        unit="percentunit", min_=0, max_=1)
b.row("Connections")
b.panel("timeseries", "Requests in flight", "",
        [(f"no_http_requests_in_flight{{{S}}}", "{{instance}}")], w=8)
b.panel("timeseries", "Open connections", "API and probe listeners.",
        [(f"no_http_open_connections{{{S}}}", "{{instance}}")], w=8)
b.panel("timeseries", "Connections refused", "Closed at accept: the node (max_connections) or one client address "
        "(per_client) at its limit. The series appear with the first refusal.",
        [(f"sum by (instance, reason) (rate(bzzz_http_connections_refused_total{{{S}}}[{RI}]))",
          "{{instance}} {{reason}}")], unit="ops", w=8)
b.write()

# ---------------------------------------------------------------- errors
b = Board("bzzz-errors", "bzzz / Errors",
          "Error rates by endpoint, failed tasks, security refusals and failing subsystems.")
b.row("HTTP")
b.panel("timeseries", "5xx ratio", "Share of responses with status 5xx per node (0 when there were none). "
        "HighErrorRate fires above 0.1 5xx responses a second for 2 minutes.",
        [(ratio_or_zero(f'{S}, status=~"5.."', S, "instance"), "{{instance}}")], unit="percentunit", w=8, min_=0)
b.panel("timeseries", "5xx responses by route", "Per second, by route and status.",
        [(f'sum by (route, status) (rate(no_http_requests_total{{{S}, status=~"5.."}}[{RI}]))', "{{route}} {{status}}")],
        unit="reqps", w=8)
b.panel("timeseries", "4xx responses by status", "401 no or bad token, 403 permission, 404, 429 throttled.",
        [(f'sum by (status) (rate(no_http_requests_total{{{S}, status=~"4.."}}[{RI}]))', "{{status}}")],
        unit="reqps", w=8)
b.panel("timeseries", "Errors by component", "bzzz_errors_total per second.",
        [(f"sum by (component) (rate(bzzz_errors_total{{{S}}}[{RI}]))", "{{component}}")], unit="ops", w=12)
b.panel("timeseries", "Failed health check runs by check", "Check runs that were degraded or unhealthy.",
        [(f"sum by (check) (rate(bzzz_health_checks_failed_total{{{S}}}[{RI}]))", "{{check}}")], unit="ops", w=12)
b.row("Tasks")
b.panel("timeseries", "Failed attempts and dead tasks", "Per second, by executor.",
        [(f'sum by (executor, state) (rate(no_tasks_total{{{S}, state=~"failed|dead"}}[{RI}]))',
          "{{executor}} {{state}}")], unit="ops", w=24)
b.row("Security")
b.panel("timeseries", "Authentication failures by reason", "HighAuthFailures fires above 0.1/s for 2 minutes.",
        [(f"sum by (reason) (rate(no_auth_failures_total{{{S}}}[{RI}]))", "{{reason}}")], unit="ops", w=8)
b.panel("timeseries", "RBAC", "Authorization decisions and 403 denials. RBACViolations fires above 0.05 denials a "
        "second for 1 minute.",
        [(f"sum by (decision) (rate(no_rbac_decisions_total{{{S}}}[{RI}]))", "{{decision}}"),
         (f"sum(rate(no_rbac_denials_total{{{S}}}[{RI}]))", "denials (403)")], unit="ops", w=8)
b.panel("timeseries", "Security violations by kind", "http_forbidden, refused P2P frames (p2p_*), election "
        "messages and joins.",
        [(f"sum by (kind) (rate(no_security_violations_total{{{S}}}[{RI}]))", "{{kind}}")], unit="ops", w=8)
b.panel("stat", "Clients throttled in the time range", "Client addresses throttled after too many failed "
        "authentications (no_suspicious_activity_total).",
        [(f"sum(increase(no_suspicious_activity_total{{{S}}}[$__range]))", "throttled")], w=6, h=6)
b.panel("timeseries", "Token validations", "Well-formed bearer tokens checked, by result.",
        [(f"sum by (result) (rate(no_auth_token_validations_total{{{S}}}[{RI}]))", "{{result}}")], unit="ops",
        w=18, h=6)
b.row("P2P and DHT")
b.panel("timeseries", "DHT operation failures", "By operation and reason (a get of a missing record is not a "
        "failure).", [(f"sum by (operation, reason) (rate(bzzz_dht_operation_failures_total{{{S}}}[{RI}]))",
                       "{{operation}} {{reason}}")], unit="ops", w=8)
b.panel("timeseries", "PubSub drops, rejections and publish failures", "",
        [(f"sum by (reason) (rate(bzzz_pubsub_messages_dropped_total{{{S}}}[{RI}]))", "dropped {{reason}}"),
         (f"sum by (reason, stage) (rate(bzzz_pubsub_messages_rejected_total{{{S}}}[{RI}]))",
          "rejected {{reason}} ({{stage}})"),
         (f"sum by (topic_class) (rate(bzzz_pubsub_publish_failures_total{{{S}}}[{RI}]))",
          "publish failed {{topic_class}}")], unit="ops", w=8)
b.panel("timeseries", "UCXL resolutions not found or failed", "",
        [(f'sum by (result) (rate(bzzz_ucxl_resolutions_total{{{S}, result!="found"}}[{RI}]))', "{{result}}")],
        unit="ops", w=8)
b.write()

# ---------------------------------------------------------------- p2p / dht / election
b = Board("bzzz-p2p-dht-election", "bzzz / P2P, DHT and election",
          "The admin election, P2P membership and pubsub, DHT records and replication, UCXL resolutions.")
b.row("Election")
b.panel("stat", "Admin", "The node that reports itself admin (bzzz_election_state 2).",
        [('bzzz_election_state{job="$job"} == 2', "{{node_id}} ({{instance}})")], w=8, h=4,
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "textMode": "name",
                 "colorMode": "none", "graphMode": "none", "justifyMode": "auto", "orientation": "auto"})
b.panel("stat", "Nodes reporting admin", "1 is right. 0 for 30 s: BZZZNoAdminElected; more than 1 for a minute: "
        "BZZZMultipleAdmins (two clusters on one network).",
        [('count(bzzz_election_state{job="$job"} == 2) or vector(0)', "admins")], w=4, h=4,
        thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}, {"color": "red", "value": 2}])
b.panel("stat", "Term", "Highest term any node reports.", [('max(bzzz_election_term{job="$job"})', "term")], w=4, h=4)
b.panel("stat", "Leadership changes in the time range", "Changes of admin seen, the highest count of any node.",
        [(f"max(increase(bzzz_election_leadership_changes_total{{{S}}}[$__range]))", "changes")], w=8, h=4)
b.panel("timeseries", "Election state by node", "0 follower or observer, 1 candidate, 2 admin.",
        [(f"bzzz_election_state{{{S}}}", "{{instance}}")], w=12, mappings=ELECTION_MAP, min_=0, max_=2)
b.panel("timeseries", "Admin heartbeat age", "Seconds since each node last heard its admin (0 on the admin).",
        [(f"bzzz_election_heartbeat_age_seconds{{{S}}}", "{{instance}}")], unit="s", w=12)
b.row("P2P")
b.panel("timeseries", "Connected peers", "Bootstrap nodes included. BZZZInsufficientPeers fires below 3.",
        [(f"bzzz_p2p_connected_peers{{{S}}}", "{{instance}}")], w=8,
        thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 3}])
b.panel("timeseries", "DHT routing table", "OpenDHT nodes known, by state (good is 0 when a node reaches nobody).",
        [(f"sum by (instance, state) (bzzz_p2p_dht_nodes{{{S}}})", "{{instance}} {{state}}")], w=8)
b.panel("timeseries", "Mean pubsub batch size", "Messages published per signed frame put.",
        [(f"sum(rate(bzzz_pubsub_messages_published_total{{{S}}}[{RI}])) / "
          f"sum(rate(bzzz_pubsub_frames_sent_total{{{S}}}[{RI}]))", "messages per frame")], w=8)
b.panel("timeseries", "Messages by topic class", "Published by the selected nodes and accepted from other nodes.",
        [(f"sum by (topic_class) (rate(bzzz_pubsub_messages_published_total{{{S}}}[{RI}]))", "published {{topic_class}}"),
         (f"sum by (topic_class) (rate(bzzz_pubsub_messages_received_total{{{S}}}[{RI}]))", "received {{topic_class}}")],
        unit="ops")
b.panel("timeseries", "Delivery latency p95 by topic class", "Sender's publish to the subscriber queue here "
        "(includes clock offset across hosts).",
        [(f"histogram_quantile(0.95, sum by (topic_class, le) (rate(bzzz_pubsub_delivery_latency_seconds_bucket{{{S}}}[{RI}])))",
          "{{topic_class}}")], unit="s")
b.row("DHT")
b.panel("timeseries", "DHT operations by result", "Record puts and gets per second.",
        [(f"sum by (result) (rate(bzzz_dht_put_operations_total{{{S}}}[{RI}]))", "put {{result}}"),
         (f"sum by (result) (rate(bzzz_dht_get_operations_total{{{S}}}[{RI}]))", "get {{result}}")], unit="ops", w=8)
b.panel("timeseries", "DHT success rate (SLI)", "bzzz:dht_success_rate, whole cluster. BZZZDHTErrorBudgetBurn fires "
        "below 99% for 15 minutes.", [("bzzz:dht_success_rate", "success rate")], unit="percentunit", w=8,
        min_=0, max_=1, thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 0.99}])
b.panel("timeseries", "DHT latency p95 by operation", "Including background announces and discovers.",
        [(f"histogram_quantile(0.95, sum by (operation, le) (rate(bzzz_dht_operation_latency_seconds_bucket{{{S}}}[{RI}])))",
          "{{operation}}")], unit="s", w=8)
b.panel("timeseries", "Replication factor", "Mean measured factor over the records each node holds (absent until "
        "measured). BZZZDHTReplicationDegraded fires below 2 for 10 minutes.",
        [(f"bzzz_dht_replication_factor{{{S}}}", "{{instance}}")], w=8,
        thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 2}])
b.panel("timeseries", "Records held and provided", "",
        [(f"bzzz_dht_records_held{{{S}}}", "held {{instance}}"),
         (f"bzzz_dht_provider_records{{{S}}}", "provided {{instance}}")], w=8)
b.panel("timeseries", "DHT cache hit ratio", "Hits over lookups of Get (held-copy reads are not lookups).",
        [(f"sum(rate(bzzz_dht_cache_hits_total{{{S}}}[{RI}])) / (sum(rate(bzzz_dht_cache_hits_total{{{S}}}[{RI}])) + "
          f"sum(rate(bzzz_dht_cache_misses_total{{{S}}}[{RI}])))", "hit ratio")], unit="percentunit", w=8,
        min_=0, max_=1)
b.panel("timeseries", "DHT cache size", "Bytes in <data_dir>/dht/cache as each node counts them.",
        [(f"bzzz_dht_cache_bytes{{{S}}}", "{{instance}}")], unit="bytes", w=8)
b.row("UCXL")
b.panel("timeseries", "UCXL resolutions", "Get and navigate resolutions by result and source.",
        [(f"sum by (result, source) (rate(bzzz_ucxl_resolutions_total{{{S}}}[{RI}]))", "{{result}} {{source}}")],
        unit="ops", w=8)
b.panel("timeseries", "UCXL resolution p95", "",
        [(f"histogram_quantile(0.95, sum by (le) (rate(bzzz_ucxl_resolution_duration_seconds_bucket{{{S}}}[{RI}])))",
          "p95")], unit="s", w=8)
b.panel("timeseries", "UCXL stored context", "Versions (tombstones included) and bytes in each node's store.",
        [(f"bzzz_ucxl_stored_versions{{{S}}}", "versions {{instance}}"),
         (f"bzzz_ucxl_stored_bytes{{{S}}}", "bytes {{instance}}")], w=8)
b.write()
