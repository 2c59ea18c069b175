"""The deployment's qualification suites, with auditd as the judge of the data (docs/qualification.md).

  suites/run [--quick] [--suites NAME ...] [--cluster local|compose|external] [--milvus HOST:PORT]
             [--brokers HOST:PORT] [--etcd HOST:PORT] [--allow-destructive] [--control-command CMD]
             [--report-dir DIR] [--seed N]

Prerequisites first (exit 2 with one line per problem); then each suite's tests, every step printed as
✅ PASS / ❌ FAIL; reports (JSON, Markdown, JUnit XML) under --report-dir; the last line is COMPREHENSIVE TEST
PASSED / MOSTLY SUCCESSFUL / COMPREHENSIVE TEST FAILED. Exit 0 only when every step that ran passed."""
import argparse
import importlib
import logging
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "dev"))

from lib import cluster as clusters  # noqa: E402
from lib import prerequisites  # noqa: E402
from lib.auditor import Auditor, default_binary  # noqa: E402
from lib.report import FAIL, Console, Report, Skip, Test  # noqa: E402

SUITES = ["replication_test", "bidirectional_test", "failover_test", "performance_test", "chaos_engineering_test",
          "consistency_test"]

# --quick: the essential subset, under 5 minutes here
QUICK = ["replication_test", "bidirectional_test", "performance_test", "consistency_test"]


class Context:
    """What every suite gets: the cluster (and its control), auditd, the report, the run's options."""

    def __init__(self, args, cluster, report, console):
        self.args = args
        self.cluster = cluster
        self.report = report
        self.console = console
        self.quick = args.quick
        self.seed = args.seed
        self.rng = random.Random(args.seed)
        self.auditd = args.auditd
        self.work = os.path.join(args.report_dir, "work")
        os.makedirs(self.work, exist_ok=True)
        self.prefix = "q%s_" % time.strftime("%H%M%S")

    def auditor(self, name, wrapper=()):
        """auditd with its own state directory for one test (its shadow built from the log as it is); `wrapper`
        runs it through another command (faketime)."""
        return Auditor(self.auditd, os.path.join(self.work, "state-" + name), self.cluster, wrapper)

    def connect(self):
        from pymilvus import connections
        connections.connect(uri="http://%s" % self.cluster.milvus, timeout=30)

    def test(self, suite, name, body):
        """Runs `body(test)`; a failed step ends the test (later steps build on it), the next test runs."""
        test = Test(suite, name, self.console)
        self.report.tests.append(test)
        self.console.line("%s / %s" % (suite, name))
        started = time.time()
        try:
            body(test)
        except Exception as error:
            if not test.steps or test.steps[-1].status != FAIL:
                # raised outside a step: record it as one
                with test.step("unexpected error"):
                    raise error
        finally:
            test.seconds = time.time() - started
        return test


def _not_built(test):
    with test.step("suite"):
        raise Skip("not built yet")


def parse(argv):
    p = argparse.ArgumentParser(prog="suites/run", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the essential subset (under 5 minutes here)")
    p.add_argument("--suites", nargs="+", choices=SUITES, default=None, metavar="NAME",
                   help="any of: %s (default: all; with --quick: %s)" % (" ".join(SUITES), " ".join(QUICK)))
    p.add_argument("--cluster", choices=["local", "compose", "external"], default="local")
    p.add_argument("--milvus", help="Milvus proxy HOST:PORT (default 127.0.0.1:19530)")
    p.add_argument("--brokers", help="Kafka bootstrap HOST:PORT (default $AUDITD_BROKERS or 127.0.0.1:9092)")
    p.add_argument("--etcd", help="Milvus's etcd HOST:PORT (default 127.0.0.1:2379)")
    p.add_argument("--compose-file", help="compose deployment's file (default docker-compose.yml)")
    p.add_argument("--allow-destructive", action="store_true",
                   help="external cluster: run restarts and faults (needs --control-command)")
    p.add_argument("--control-command", help="external cluster: 'CMD {action} {role}' (action: stop, start, "
                                             "kill, restart, freeze, thaw)")
    p.add_argument("--auditd", default=default_binary(), help="auditd binary (default: the newer build)")
    p.add_argument("--report-dir", help="default reports/<UTC timestamp>/")
    p.add_argument("--seed", type=int, default=None, help="seed of every random choice (in the report)")
    args = p.parse_args(argv)
    if args.suites is None:
        args.suites = QUICK if args.quick else SUITES
    if args.report_dir is None:
        args.report_dir = os.path.join(ROOT, "reports", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)
    return args


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    # pymilvus logs every failed RPC; during failover those are expected and each step says what matters
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    console = Console(sys.stdout)
    cluster = clusters.make(args)
    report = Report({"quick": args.quick, "suites": args.suites, "cluster": args.cluster, "seed": args.seed,
                     "auditd": args.auditd, "report_dir": args.report_dir})
    report.cluster = cluster.describe()

    checks = prerequisites.check(cluster, args.auditd, args.report_dir)
    report.prerequisites = checks
    console.line(prerequisites.table(checks))
    missing = [c for c in checks if not c["ok"]]
    if missing:
        for c in missing:
            print("suites/run: prerequisite missing: %s: %s" % (c["check"], c["detail"]), file=sys.stderr)
        report.finished = time.time()
        report.write(args.report_dir)
        return 2

    context = Context(args, cluster, report, console)
    console.line("seed %d, %s cluster, auditd %s, reports in %s" % (args.seed, cluster.kind, args.auditd,
                                                                      args.report_dir))
    for name in [s for s in SUITES if s in args.suites]:
        console.line("")
        console.line("== %s" % name)
        if not os.path.exists(os.path.join(HERE, name + ".py")):
            context.test(name, name, lambda t: _not_built(t))
            continue
        importlib.import_module(name).run(context)

    report.finished = time.time()
    paths = report.write(args.report_dir)
    counts = report.counts
    console.line("")
    console.line("%d steps passed, %d failed, %d skipped in %.0f s; reports: %s" % (
        counts["PASS"], counts["FAIL"], counts["SKIP"], report.finished - report.started,
        ", ".join(sorted(paths.values()))))
    console.line(report.verdict)
    return 0 if report.verdict == "COMPREHENSIVE TEST PASSED" else 1


if __name__ == "__main__":
    sys.exit(main())
