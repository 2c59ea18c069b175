"""The qualification runner's reports (suites/lib/report.py): what a run found, as JSON, Markdown and JUnit XML,
and the closing verdict — without a cluster."""
import io
import json
import os
import sys
import xml.etree.ElementTree as ElementTree

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "suites"))

from lib.report import Console, Report, Skip, Test  # noqa: E402


def run_steps(report, console, outcomes):
    test = Test("replication_test", "replica_factor_two", console)
    report.tests.append(test)
    for name, outcome in outcomes:
        try:
            with test.step(name) as step:
                step.measured["n"] = 1
                if outcome == "fail":
                    assert False, "two groups expected, got 1"
                if outcome == "skip":
                    raise Skip("no control")
                if outcome == "error":
                    raise RuntimeError("broker gone")
        except Exception:
            break  # a failed step ends the test
    return test


def test_reports_count_every_step_and_a_failure_ends_its_test(tmp_path):
    out = io.StringIO()
    report = Report({"quick": True})
    test = run_steps(report, Console(out), [("a", "pass"), ("b", "skip"), ("c", "fail"), ("d", "pass")])
    assert [s.status for s in test.steps] == ["PASS", "SKIP", "FAIL"] and test.status == "FAIL"
    assert report.counts == {"PASS": 1, "FAIL": 1, "SKIP": 1}
    assert report.verdict == "COMPREHENSIVE TEST FAILED"
    console = out.getvalue().splitlines()
    assert console[0].startswith("  ✅ PASS a") and console[2].startswith("  ❌ FAIL c")
    assert "two groups expected, got 1" in console[2]

    paths = report.write(str(tmp_path / "r"))
    data = json.load(open(paths["report.json"]))
    assert data["verdict"] == "COMPREHENSIVE TEST FAILED" and data["tests"][0]["steps"][2]["status"] == "FAIL"
    suite = ElementTree.parse(paths["junit.xml"]).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    failure = suite.findall("testcase")[2].find("failure")
    assert failure is not None and "two groups expected" in failure.get("message")
    markdown = open(paths["report.md"]).read()
    assert markdown.startswith("# Qualification report: COMPREHENSIVE TEST FAILED")
    assert "| c | ❌ FAIL |" in markdown


@pytest.mark.parametrize("outcomes, verdict", [
    ([("a", "pass"), ("b", "skip")], "COMPREHENSIVE TEST PASSED"),
    ([("a", "skip")], "COMPREHENSIVE TEST FAILED"),  # nothing ran: nothing qualified
    ([("a", "error")], "COMPREHENSIVE TEST FAILED"),
])
def test_the_closing_verdict(outcomes, verdict):
    report = Report({})
    run_steps(report, Console(io.StringIO()), outcomes)
    assert report.verdict == verdict


def test_mostly_successful_is_four_in_five_steps_passed():
    report = Report({})
    console = Console(io.StringIO())
    for _ in range(4):
        run_steps(report, console, [("ok", "pass")])
    run_steps(report, console, [("bad", "fail")])
    assert report.verdict == "MOSTLY SUCCESSFUL"
