"""Simulated patients and pharmacies against a medreq server, with delivery accounting.

    scenario = load_scenario("scenarios/smoke.toml")
    report = asyncio.run(run_embedded(scenario))      # or run_scenario(scenario, "http://127.0.0.1:8000")
    assert report.lost_total == 0 and report.duplicated_total == 0

`medreq simulate` (``medreq.cli.simulate``) is the command line around this package, and
`medreq.simulate.bench` holds the benchmarks behind `medreq bench` and ``loadtests/bench.py``;
`medreq.simulate.accounts` makes the accounts of the simulator, the benchmarks, Locust and the tests.
"""

from .limits import SetupError
from .report import Report
from .runner import run_embedded, run_scenario
from .scenario import Scenario, ScenarioError, load_scenario
from .server import ServerProcess, TargetRefused, check_target

__all__ = [
    "Report",
    "Scenario",
    "ScenarioError",
    "ServerProcess",
    "SetupError",
    "TargetRefused",
    "check_target",
    "load_scenario",
    "run_embedded",
    "run_scenario",
]
