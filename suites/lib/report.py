"""What a qualification run found: tests made of named steps (PASS / FAIL / SKIP, duration, measured numbers,
auditd's verdict), written as JSON (everything), Markdown (for a person) and JUnit XML (for CI systems)."""
import json
import os
import time
import traceback
from xml.sax.saxutils import escape, quoteattr

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
ICONS = {PASS: "✅", FAIL: "❌", SKIP: "⏭️"}


class Skip(Exception):
    """Raised inside a step that cannot run here (e.g. destructive on an external cluster)."""


class Step:
    def __init__(self, name):
        self.name = name
        self.status = None
        self.seconds = 0.0
        self.message = ""
        self.measured = {}
        self.verdict = None

    def as_dict(self):
        return {"name": self.name, "status": self.status, "seconds": round(self.seconds, 2),
                "message": self.message, "measured": self.measured, "verdict": self.verdict}


class Test:
    """One test of a suite; `step(name)` is a context manager that times the step and records its outcome."""

    __test__ = False  # not a pytest class

    def __init__(self, suite, name, console):
        self.suite = suite
        self.name = name
        self.steps = []
        self.started = time.time()
        self.seconds = 0.0
        self.console = console
        self.measured = {}

    @property
    def status(self):
        statuses = [s.status for s in self.steps]
        if FAIL in statuses:
            return FAIL
        if statuses and all(s == SKIP for s in statuses):
            return SKIP
        return PASS

    def step(self, name):
        return _StepContext(self, name)

    def as_dict(self):
        return {"suite": self.suite, "name": self.name, "status": self.status, "seconds": round(self.seconds, 2),
                "measured": self.measured, "steps": [s.as_dict() for s in self.steps]}


class _StepContext:
    def __init__(self, test, name):
        self.test = test
        self.step = Step(name)

    def __enter__(self):
        self.started = time.time()
        self.test.steps.append(self.step)
        return self.step

    def __exit__(self, kind, error, tb):
        step = self.step
        step.seconds = time.time() - self.started
        if kind is None:
            step.status = PASS
        elif issubclass(kind, Skip):
            step.status = SKIP
            step.message = str(error)
        else:
            step.status = FAIL
            detail = str(error) or kind.__name__
            if not isinstance(error, AssertionError):
                detail = "".join(traceback.format_exception_only(kind, error)).strip()
            step.message = detail[:2000]
        self.test.console.step(self.test, step)
        # a failed step ends its test (later steps build on it); a skipped one does not
        return kind is not None and issubclass(kind, Skip)


class Console:
    def __init__(self, stream):
        self.stream = stream

    def line(self, text):
        print(text, file=self.stream, flush=True)

    def step(self, test, step):
        text = "  %s %s %s (%.1f s)" % (ICONS[step.status], step.status, step.name, step.seconds)
        if step.message:
            text += ": " + step.message.splitlines()[0][:300]
        self.line(text)


class Report:
    def __init__(self, arguments):
        self.arguments = arguments
        self.started = time.time()
        self.finished = None
        self.cluster = {}
        self.prerequisites = []
        self.tests = []

    @property
    def counts(self):
        steps = [s for t in self.tests for s in t.steps]
        return {status: sum(1 for s in steps if s.status == status) for status in (PASS, FAIL, SKIP)}

    @property
    def verdict(self):
        counts = self.counts
        ran = counts[PASS] + counts[FAIL]
        if counts[FAIL] == 0 and ran > 0:
            return "COMPREHENSIVE TEST PASSED"
        if ran and counts[PASS] / ran >= 0.8:
            return "MOSTLY SUCCESSFUL"
        return "COMPREHENSIVE TEST FAILED"

    def as_dict(self):
        return {"started": _iso(self.started), "finished": _iso(self.finished or time.time()),
                "seconds": round((self.finished or time.time()) - self.started, 1), "arguments": self.arguments,
                "cluster": self.cluster, "prerequisites": self.prerequisites, "verdict": self.verdict,
                "counts": self.counts, "tests": [t.as_dict() for t in self.tests]}

    def write(self, directory):
        os.makedirs(directory, exist_ok=True)
        paths = {name: os.path.join(directory, name) for name in ("report.json", "report.md", "junit.xml")}
        with open(paths["report.json"], "w") as f:
            json.dump(self.as_dict(), f, indent=2)
        with open(paths["report.md"], "w") as f:
            f.write(self.markdown())
        with open(paths["junit.xml"], "w") as f:
            f.write(self.junit())
        return paths

    def markdown(self):
        d = self.as_dict()
        counts = d["counts"]
        out = ["# Qualification report: %s" % d["verdict"], "",
               "%s → %s (%.0f s); %d steps passed, %d failed, %d skipped." % (
                   d["started"], d["finished"], d["seconds"], counts[PASS], counts[FAIL], counts[SKIP]), "",
               "Cluster: %s" % ", ".join("%s %s" % (k, v) for k, v in sorted(self.cluster.items())), ""]
        if self.prerequisites:
            out += ["## Prerequisites", "", "| check | status | detail |", "|---|---|---|"]
            out += ["| %s | %s | %s |" % (p["check"], "ok" if p["ok"] else "MISSING", _cell(p["detail"]))
                    for p in self.prerequisites]
            out.append("")
        for suite in _ordered(t.suite for t in self.tests):
            out += ["## %s" % suite, ""]
            for test in (t for t in self.tests if t.suite == suite):
                out += ["### %s %s — %s (%.0f s)" % (ICONS[test.status], test.name, test.status, test.seconds), ""]
                if test.measured:
                    out += ["| measured | value |", "|---|---|"]
                    out += ["| %s | %s |" % (k, _cell(v)) for k, v in test.measured.items()]
                    out.append("")
                out += ["| step | status | s | auditd | detail |", "|---|---|---|---|---|"]
                for s in test.steps:
                    verdict = _verdict_text(s.verdict)
                    detail = "; ".join(["%s=%s" % (k, v) for k, v in s.measured.items()] +
                                       ([s.message.splitlines()[0][:200]] if s.message else []))
                    out.append("| %s | %s %s | %.1f | %s | %s |" % (s.name, ICONS[s.status], s.status, s.seconds,
                                                                     _cell(verdict), _cell(detail)))
                out.append("")
        return "\n".join(out) + "\n"

    def junit(self):
        counts = self.counts
        cases = []
        for test in self.tests:
            for s in test.steps:
                body = ""
                if s.status == FAIL:
                    body = "<failure message=%s>%s</failure>" % (quoteattr(s.message.splitlines()[0][:500]
                                                                           if s.message else "failed"),
                                                             escape(s.message))
                elif s.status == SKIP:
                    body = "<skipped message=%s/>" % quoteattr(s.message)
                cases.append('  <testcase classname=%s name=%s time="%.3f">%s</testcase>' % (
                    quoteattr("%s.%s" % (test.suite, test.name)), quoteattr(s.name), s.seconds, body))
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="qualification" tests="%d" failures="%d" '
                'skipped="%d" time="%.1f">\n%s\n</testsuite>\n' % (
                    sum(counts.values()), counts[FAIL], counts[SKIP],
                    (self.finished or time.time()) - self.started, "\n".join(cases)))


def _verdict_text(verdict):
    if not verdict:
        return ""
    text = "exit %s" % verdict.get("exit")
    if verdict.get("open"):
        text += ": " + ", ".join("%s r%s" % (f["kind"], f["replica"]) for f in verdict["open"])
    elif verdict.get("exit") == 0:
        text += ": clean, %s of %s replicas" % (verdict.get("replicas"), verdict.get("replicas_total"))
    return text


def _cell(value):
    return str(value).replace("|", "\\|").replace("\n", " ")


def _iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _ordered(items):
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen
