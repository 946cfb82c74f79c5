"""The metrics page's figures as tables: one source for the table on the page, the chart
beside it and its CSV export, so the three can never disagree."""

from dataclasses import dataclass, field

from django.utils import timezone

from governance.actors import Actor
from metrics import selectors

HOURS = 3600


def _hours(seconds):
    return None if seconds is None else round(seconds / HOURS, 2)


@dataclass
class Table:
    name: str
    title: str
    header: list[str]
    rows: list[list] = field(default_factory=list)
    # How the chart draws it: the label column and which columns are series.
    chart: str = "bar"
    series: list[int] = field(default_factory=list)
    stacked: bool = False

    def chart_config(self) -> dict:
        return {
            "type": self.chart,
            "stacked": self.stacked,
            "labels": [str(row[0]) for row in self.rows],
            "datasets": [
                {"label": self.header[i], "data": [row[i] for row in self.rows]}
                for i in self.series
            ],
        }


def tables(actor: Actor, project_id: int, *, now=None) -> dict[str, Table]:
    now = now or timezone.now()
    daily = selectors.daily_series(actor, project_id, now=now)["days"]
    summary = selectors.project_summary(actor, project_id, now=now)
    forecast = selectors.milestone_forecasts(actor, project_id, now=now)
    alerts = selectors.alerts_recent(actor, project_id)["alerts"]
    phases = summary["phases_seconds"]
    out = [
        Table(
            "throughput",
            "Throughput per day",
            ["day", "integrated", "implemented", "claimed", "lease expiries", "claim conflicts"],
            [
                [
                    d["day"],
                    d["integrated"],
                    d["implemented"],
                    d["claimed"],
                    d["lease_expiries"],
                    d["claim_conflicts"],
                ]
                for d in daily
            ],
            series=[1, 2, 4],
        ),
        Table(
            "flow",
            "Lead, cycle and review times per day (median, hours)",
            ["day", "lead time p50 (h)", "cycle time p50 (h)", "review latency p50 (h)"],
            [
                [
                    d["day"],
                    _hours(d["lead_time_p50_seconds"]),
                    _hours(d["cycle_time_p50_seconds"]),
                    _hours(d["review_latency_p50_seconds"]),
                ]
                for d in daily
            ],
            chart="line",
            series=[1, 2, 3],
        ),
        Table(
            "phases",
            "Where lead time goes (hours, tasks integrated in the window)",
            ["statistic", "waiting", "working", "waiting for review", "integrating"],
            [
                [stat]
                + [_hours(phases[p][stat]) for p in ("waiting", "working", "review", "integrating")]
                for stat in ("p50", "p90", "mean")
            ],
            series=[1, 2, 3, 4],
            stacked=True,
        ),
        Table(
            "wip",
            "WIP and blocked tasks per day (as seen by the roll-up)",
            ["day", "WIP", "blocked", "open"],
            [[d["day"], d["wip"], d["blocked"], d["open"]] for d in daily],
            chart="line",
            series=[1, 2],
        ),
        Table(
            "agents",
            "Per agent",
            [
                "agent",
                "claimed",
                "implemented",
                "integrated",
                "expired",
                "released",
                "failure rate",
            ],
            [
                [
                    a["agent"],
                    a["claimed"],
                    a["implemented"],
                    a["integrated"],
                    a["expired"],
                    a["released"],
                    None if a["failure_rate"] is None else round(a["failure_rate"], 3),
                ]
                for a in summary["agents"]
            ],
            series=[3, 4, 5],
        ),
        Table(
            "forecast",
            "Milestone forecast (Monte Carlo over daily throughput)",
            ["milestone", "remaining", "status", "p50", "p85", "p95"],
            [
                [m["name"], m["remaining"], m["status"], m["p50"], m["p85"], m["p95"]]
                for m in forecast["milestones"]
            ],
            chart="",
        ),
        Table(
            "alerts",
            "Recent alerts",
            ["time", "rule", "value", "threshold", "message"],
            [
                [a["created_at"], a["rule"], a["value"], a["threshold"], a["message"]]
                for a in alerts
            ],
            chart="",
        ),
    ]
    return {t.name: t for t in out}, summary, forecast
