"""The playgrad dashboard: a local web page over a folder of runs (``python scripts/dashboard.py runs``).

Runs and their status, live learning curves, config diffs, recorded episodes and model internals, served
by the standard library's HTTP server from files the runs already write; the page is plain JS/CSS in
``static/`` (no CDN, works offline). See :mod:`playgrad.dashboard.server` for the JSON API and
:mod:`playgrad.dashboard.runs` for how runs, their status and their metrics are read.
"""

from playgrad.dashboard.runs import RunIndex
from playgrad.dashboard.server import DEFAULT_PORT, DashboardError, DashboardServer, make_server

__all__ = ["DEFAULT_PORT", "DashboardError", "DashboardServer", "RunIndex", "make_server"]
