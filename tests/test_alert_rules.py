"""docs/hosting/alerts.yaml: every rule is complete (expr, for, severity, summary, a
runbook anchor that exists in operations.md) and names only metrics /metrics serves, so
a renamed metric cannot leave an alert that never fires."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import https_client, make_app

DOCS = Path(__file__).resolve().parent.parent / "docs" / "hosting"
TOKEN = "metrics-token-for-the-scraper-0123"
# PromQL words that are not metric names.
PROMQL = {"sum", "rate", "increase", "max", "by", "le", "histogram_quantile", "up", "job",
          "route", "status", "kind", "instance"}


def rules() -> list[dict[str, str]]:
    """Each rule's fields, from the file's one layout (block `expr: |` included)."""
    found: list[dict[str, str]] = []
    key = None
    for line in (DOCS / "alerts.yaml").read_text().splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        if match := re.match(r"^\s+- alert: (\w+)$", line):
            found.append({"alert": match.group(1)})
            key = None
        elif match := re.match(r"^\s+(expr|for|severity|summary|runbook): ?(.*)$", line):
            key = match.group(1)
            found[-1][key] = match.group(2).strip().strip('"').removesuffix("|")
        elif key == "expr" and line.startswith(" " * 10):
            found[-1]["expr"] += " " + line.strip()
        else:
            key = None
    return found


def test_every_alert_is_complete_and_has_a_runbook_entry():
    operations = (DOCS / "operations.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
               for heading in re.findall(r"^#+ (.+)$", operations, flags=re.M)}
    found = rules()
    assert len(found) >= 8
    for rule in found:
        assert {"expr", "for", "severity", "summary", "runbook"} <= set(rule), rule
        assert rule["expr"].strip(), rule
        assert rule["severity"] in ("page", "ticket"), rule
        assert re.fullmatch(r"\d+m", rule["for"]), rule
        assert rule["runbook"].split("#")[1] in anchors, rule


def test_every_metric_an_alert_names_is_served(sandbox, tmp_path):
    text = https_client(make_app(sandbox, tmp_path, METRICS_TOKEN=TOKEN)).get(
        "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    ).get_data(as_text=True)
    served = set(re.findall(r"^# TYPE (\w+) (\w+)$", text, flags=re.M))
    names = set()
    for name, kind in served:
        names.add(name)
        if kind == "counter":
            names.add(name + "_total")
        if kind == "histogram":
            names.update(name + suffix for suffix in ("_bucket", "_count", "_sum"))
    for rule in rules():
        expr = re.sub(r'\{[^}]*\}|"[^"]*"|\[[^\]]*\]', " ", rule["expr"])
        used = {word for word in re.findall(r"[a-z_]+", expr) if word not in PROMQL}
        assert used <= names, (rule["alert"], used - names)
