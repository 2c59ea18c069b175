"""Cluster control behind one small interface, for the local process cluster (dev/cluster), a docker compose
deployment (the compose file's service names) and an existing cluster (no control unless a command is given).

Roles are the deployment's names: etcd, kafka, rootcoord, datacoord, querycoord, indexcoord (compose only),
proxy, querynode1, querynode2, datanode, indexnode."""
import os
import shlex
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ControlUnavailable(Exception):
    pass


class Cluster:
    kind = "external"
    destructive = False
    milvus = "127.0.0.1:19530"
    brokers = "127.0.0.1:9092"
    etcd = "127.0.0.1:2379"
    etcd_root = "by-dev"

    def control(self, action, role):
        raise ControlUnavailable("%s cluster: no control command for '%s %s'" % (self.kind, action, role))

    def stop(self, role):
        self.control("stop", role)

    def start(self, role):
        self.control("start", role)

    def kill(self, role):
        self.control("kill", role)

    def restart(self, role):
        self.control("restart", role)

    def freeze(self, role):
        self.control("freeze", role)

    def thaw(self, role):
        self.control("thaw", role)

    def restore(self, roles):
        """Best effort after a test, whatever it left behind: every role in `roles` started (running is fine)."""
        for role in roles:
            try:
                self.start(role)
            except Exception:
                pass

    def limit(self, role, memory=None, cpu=None):
        """Holds a role to `memory` bytes (the kernel's OOM killer ends it past them) or `cpu` % of one CPU."""
        raise ControlUnavailable("%s cluster: resource limits need the local cluster" % self.kind)

    def unlimit(self, role):
        raise ControlUnavailable("%s cluster: resource limits need the local cluster" % self.kind)

    def fill_storage(self):
        """Fills the volume every role writes segments to: ENOSPC for the DataNode's flushes."""
        raise ControlUnavailable("%s cluster: filling storage needs the local cluster" % self.kind)

    def free_storage(self):
        raise ControlUnavailable("%s cluster: filling storage needs the local cluster" % self.kind)

    def fresh(self):
        raise ControlUnavailable("%s cluster: no way to start it from empty state here" % self.kind)

    def pid(self, role):
        """The role's process id where it is a process on this machine (resource and network faults)."""
        return None

    def querynode_port(self, role):
        return {"querynode1": 21123, "querynode2": 21133}.get(role)

    def describe(self):
        return {"kind": self.kind, "milvus": self.milvus, "brokers": self.brokers, "etcd": self.etcd,
                "destructive": self.destructive}


class LocalCluster(Cluster):
    """dev/cluster: every role a local process in the `auditd` network namespace."""
    kind = "local"
    destructive = True

    def __init__(self, brokers=None, milvus=None, etcd=None):
        self.brokers = brokers or os.environ.get("AUDITD_BROKERS", self.brokers)
        self.milvus = milvus or self.milvus
        self.etcd = etcd or self.etcd
        self.script = os.path.join(ROOT, "dev", "cluster")

    def control(self, action, role, *more):
        done = subprocess.run([self.script, action, *([role] if role else []), *more], capture_output=True,
                              text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError("dev/cluster %s %s: %s" % (action, role, (done.stderr or done.stdout).strip()[-500:]))

    def limit(self, role, memory=None, cpu=None):
        self.control("limit", role, *(["--memory", str(memory)] if memory else []),
                     *(["--cpu", str(cpu)] if cpu else []))

    def unlimit(self, role):
        self.control("unlimit", role)

    def fill_storage(self):
        self.control("fill-storage", None)

    def free_storage(self):
        self.control("free-storage", None)

    def status(self):
        import json
        done = subprocess.run([self.script, "status", "--json"], capture_output=True, text=True, timeout=60)
        return json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else []

    def fresh(self):
        """The whole cluster stopped and started again from empty state (the broker's log is in memory)."""
        self.control("down", None)
        self.control("up", None)

    def pid(self, role):
        for entry in self.status():
            if entry.get("name") == role and str(entry.get("pid", "")).isdigit():
                return int(entry["pid"])
        return None


class ComposeCluster(Cluster):
    """docker compose: roles are the compose file's service names (querynode1, querynode2, …)."""
    kind = "compose"
    destructive = True
    ACTIONS = {"stop": ["stop"], "start": ["start"], "kill": ["kill"], "restart": ["restart"],
               "freeze": ["pause"], "thaw": ["unpause"]}

    def __init__(self, compose_file=None, brokers=None, milvus=None, etcd=None):
        self.file = compose_file or os.path.join(ROOT, "docker-compose.yml")
        self.brokers = brokers or "127.0.0.1:9093"
        self.milvus = milvus or self.milvus
        self.etcd = etcd or self.etcd

    def control(self, action, role):
        done = subprocess.run(["docker", "compose", "-f", self.file, *self.ACTIONS[action], role],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError("docker compose %s %s: %s" % (action, role, done.stderr.strip()[-500:]))


class ExternalCluster(Cluster):
    """An existing cluster: read-only unless --allow-destructive and a control command
    ('CMD {action} {role}', e.g. 'ssh ops@host systemctl {action} milvus-{role}')."""
    kind = "external"

    def __init__(self, milvus, brokers, etcd, control_command=None, allow_destructive=False):
        self.milvus, self.brokers, self.etcd = milvus, brokers, etcd
        self.command = control_command
        self.destructive = bool(allow_destructive and control_command)

    def control(self, action, role):
        if not self.destructive:
            raise ControlUnavailable("external cluster: destructive steps need --allow-destructive and "
                                     "--control-command")
        done = subprocess.run(shlex.split(self.command.format(action=action, role=role)), capture_output=True,
                              text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError("%s: %s" % (self.command, done.stderr.strip()[-500:]))


def make(args):
    if args.cluster == "local":
        return LocalCluster(args.brokers, args.milvus, args.etcd)
    if args.cluster == "compose":
        return ComposeCluster(args.compose_file, args.brokers, args.milvus, args.etcd)
    return ExternalCluster(args.milvus or Cluster.milvus, args.brokers or Cluster.brokers, args.etcd or Cluster.etcd,
                           args.control_command, args.allow_destructive)
