#!/usr/bin/env python3
"""run.py — runs the benchmark scenarios against tertulia and its peers side by side, and
writes the report. Called by bench/run.sh, which installs and builds first.

Every server runs pinned to CPU 0 and the load generator to CPU 1 (taskset); each run gets a
fresh server on a free loopback port; each scenario is repeated and reported as the median
with min and max. A run whose generator reports wrong, duplicated, reordered or skipped
deliveries is a failed run and gives no number. Every run is bounded in time, and the whole
benchmark by --budget-min. Only the Python standard library is used.
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVERS = ["tertulia", "ws", "tornado", "lws", "uws"]
SERVER_TITLES = {
    "tertulia": "tertulia (C, libuv)",
    "ws": "Node.js + ws",
    "tornado": "Python + Tornado",
    "lws": "C + libwebsockets",
    "uws": "C++ + uWebSockets",
    "tertulia-mem": "tertulia, history in memory (`--db :memory:`)",
    "tertulia-prev": "tertulia at the previous commit",
    "tertulia-tls": "tertulia over TLS (`--listen-tls`)",
    "tertulia-redis": "one node on Redis",
    "tertulia-redis2": "two nodes on Redis, clients split",
}
# The TLS and permessage-deflate pairs: (scenario of the measured side, of its plain partner,
# the server of the measured side, the --skip names that leave it out).
TLS_PMD = [
    ("fanout_deflate", "fanout_deflate_off", "tertulia", ("deflate", "deflate_fanout")),
    ("tls_fanout", "tls_fanout_plain", "tertulia-tls", ("tls", "tls_fanout")),
    ("tls_idle", "tls_idle_plain", "tertulia-tls", ("tls", "tls_idle")),
    ("tls_connect", "tls_connect_plain", "tertulia-tls", ("tls", "tls_connect")),
]
# Issue 12: the fan-out with typing traffic beside the same fan-out without it, both with
# tertulia.v1 clients (only they may send typing), for tertulia and the previous commit.
TYPING_SHARE = 0.1
TARGET_DEFLATE_RATIO = 0.77  # deflate costs at most 1.3x plain per delivery
TARGET_TLS_RATIO = 0.60  # TLS fan-out keeps at least 60 % of plain per server CPU-second
# Issue 15: the big room at fixed rates, its p99 targets, and the other targets.
BIGROOM_RATES = (100, 200, 400)
BIGROOM_P99_TARGET = {100: 25.0, 400: 40.0}
TARGET_NS_PER_DELIVERY = 350.0
TARGET_IDLE_BYTES = 0.8 * 1024
TARGET_LOAD_BYTES = 1.5 * 1024
TARGET_PRIVATE_PER_CPU_S = 114000.0
# Kernel paths whose inclusive share perf reports (stop_perf): what each costs per delivery.
PERF_PATHS = ("handle_softirqs", "__sys_sendto", "do_writev", "ksys_read", "__sys_recvfrom",
              "__x64_sys_epoll_wait", "__x64_sys_pwrite64", "__x64_sys_fdatasync")
TARGET_P99_MS = 50.0  # "sustainable": every message delivered, p99 under this
KEEPUP_P99_MS = 1000.0  # "keeps up": every message delivered, p99 under this (not diverging)


def sweep_class(code, res):
    """How one sweep step went: 'sustained', 'kept up', or 'fell behind'."""
    p99 = res["latency_us"]["p99"] / 1000 if res else None
    if code != 0 or p99 is None or p99 >= KEEPUP_P99_MS:
        return "fell behind"
    return "sustained" if p99 < TARGET_P99_MS else "kept up"


SWEEP_RANK = {"sustained": 0, "kept up": 1, "fell behind": 2}


def sweep_best(records):
    """Of the attempts at one rate, the best: by class, then by p99."""
    def key(r):
        res = r.get("result")
        return (SWEEP_RANK[sweep_class(r.get("exit"), res)],
                res["latency_us"]["p99"] if res else float("inf"))
    done = [r for r in records if not r.get("skipped")]
    return min(done, key=key) if done else None

# Scenario plans. "args" go to loadgen as they are; reps are repetitions per server.
PLANS = {
    "full": {
        "reps": 3,
        # --quiet: the server's RSS again 3 s after the load, connections still open (issue 15:
        # what a burst leaves behind once its connections go quiet).
        "fanout": ["--scenario", "fanout", "--clients", "1000", "--rooms", "10", "--window", "16",
                   "--duration", "5", "--drain", "5", "--quiet", "3"],
        "private": ["--scenario", "private", "--pairs", "500", "--window", "16", "--duration", "5",
                    "--drain", "5"],
        "bigroom_clients": 5000,
        "bigroom_duration": 5,
        "sweep_rates": [2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000],
        "sweep_duration": 3,
        "idle": [("idle_10k", ["--scenario", "idle", "--clients", "10000", "--rooms", "100",
                               "--duration", "2", "--settle", "1"]),
                 ("idle_19k", ["--scenario", "idle", "--clients", "19000", "--rooms", "100",
                               "--procs", "2", "--duration", "2", "--settle", "1"])],
        "connect": ["--scenario", "connect", "--clients", "5000", "--duration", "10",
                    "--drain", "10"],
        "churn": ["--scenario", "churn", "--clients", "5000", "--cycles", "4", "--duration", "60",
                  "--settle", "1"],
        # TLS and permessage-deflate (issue 10): 100 members per room; the deflate pair sends
        # chat-like prose of 512 bytes (over --deflate-min, so it is compressed).
        "deflate_fanout": ["--scenario", "fanout", "--clients", "1000", "--rooms", "10",
                           "--window", "16", "--duration", "5", "--drain", "5", "--text", "words",
                           "--size", "512"],
        "tls_fanout": ["--scenario", "fanout", "--clients", "1000", "--rooms", "10", "--window",
                       "16", "--duration", "5", "--drain", "5"],
        "tls_idle": ["--scenario", "idle", "--clients", "10000", "--rooms", "100", "--duration",
                     "2", "--settle", "1"],
        "tls_connect": ["--scenario", "connect", "--clients", "5000", "--duration", "10",
                        "--drain", "10"],
        # A mass disconnect (bench/massclose.mjs): v1 members of one room dropped at once.
        "massclose": ["--sizes", "1000,2000,4000", "--reps", "3"],
        # Issue 13: the fan-out and private shapes above (without --quiet) against one node on
        # SQLite, one node on Redis and two nodes on Redis; then the fan-out at several windows
        # (offered load) for SQLite and one Redis node: what a store round trip per loop
        # iteration costs, and how it is shared as batches grow.
        "cluster_fanout": ["--scenario", "fanout", "--clients", "1000", "--rooms", "10",
                           "--window", "16", "--duration", "5", "--drain", "5"],
        "cluster_private": ["--scenario", "private", "--pairs", "500", "--window", "16",
                            "--duration", "5", "--drain", "5"],
        # (senders, window): messages in flight = senders x window, members per room as in
        # cluster_fanout; one sender with one message in flight is a batch per message.
        "cluster_loads": [(1, 1), (10, 1), (10, 4), (10, 16), (10, 64)],
        "cluster_window_duration": 3,
    },
    "quick": {
        "reps": 1,
        "fanout": ["--scenario", "fanout", "--clients", "200", "--rooms", "4", "--window", "16",
                   "--duration", "2", "--drain", "3", "--quiet", "3"],
        "private": ["--scenario", "private", "--pairs", "100", "--window", "16", "--duration", "2",
                    "--drain", "3"],
        "bigroom_clients": 1000,
        "bigroom_duration": 2,
        "sweep_rates": [10, 50, 200, 1000],
        "sweep_duration": 2,
        "idle": [("idle_2k", ["--scenario", "idle", "--clients", "2000", "--rooms", "20",
                              "--duration", "1", "--settle", "0.5"]),
                 ("idle_4k", ["--scenario", "idle", "--clients", "4000", "--rooms", "20",
                              "--procs", "2", "--duration", "1", "--settle", "0.5"])],
        "connect": ["--scenario", "connect", "--clients", "1000", "--duration", "5",
                    "--drain", "5"],
        "churn": ["--scenario", "churn", "--clients", "1000", "--cycles", "2", "--duration", "30",
                  "--settle", "0.5"],
        "deflate_fanout": ["--scenario", "fanout", "--clients", "200", "--rooms", "2", "--window",
                           "16", "--duration", "2", "--drain", "3", "--text", "words", "--size",
                           "512"],
        "tls_fanout": ["--scenario", "fanout", "--clients", "200", "--rooms", "2", "--window",
                       "16", "--duration", "2", "--drain", "3"],
        "tls_idle": ["--scenario", "idle", "--clients", "2000", "--rooms", "20", "--duration", "1",
                     "--settle", "0.5"],
        "tls_connect": ["--scenario", "connect", "--clients", "1000", "--duration", "3",
                        "--drain", "5"],
        "massclose": ["--sizes", "500,1000", "--reps", "1"],
        "cluster_fanout": ["--scenario", "fanout", "--clients", "200", "--rooms", "4",
                           "--window", "16", "--duration", "2", "--drain", "3"],
        "cluster_private": ["--scenario", "private", "--pairs", "100", "--window", "16",
                            "--duration", "2", "--drain", "3"],
        "cluster_loads": [(1, 1), (4, 1), (4, 16), (4, 64)],
        "cluster_window_duration": 2,
    },
}


def placeholders(mm):
    """'--port 4001,4002' -> '--port PORT1,PORT2' (one: PORT), for the report's commands."""
    flag, n = mm.group(1), mm.group(2).count(",") + 1
    word = "PID" if flag == "server-pid" else "PORT"
    return f"--{flag} " + (word if n == 1 else ",".join(f"{word}{i + 1}" for i in range(n)))


def load_args(base, senders, window, duration):
    """The fan-out arguments base with senders rooms (of base's members per room each),
    --window and --duration replaced."""
    out = list(base)
    members = int(out[out.index("--clients") + 1]) // int(out[out.index("--rooms") + 1])
    for flag, v in (("--rooms", senders), ("--clients", senders * members),
                    ("--window", window), ("--duration", duration)):
        out[out.index(flag) + 1] = str(v)
    return out


CLUSTER_LOAD = re.compile(r"cluster_s(\d+)w(\d+)$")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_cpu():
    """CPU seconds the machine has spent running processes, all CPUs: user, nice and system
    time, not irq and softirq. Niced processes count: with scheduler autogroups (the default
    here) a niced process in another session competes with the benchmark as an equal."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2]) / CLK_TCK


def proc_cpu(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return 0.0
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class OtherLoad:
    """The CPU other processes use while a run goes on: the machine's user+system time less
    the server's (every process of it: a cluster's nodes and its Redis) and the generator's (a
    finished child of this process, so in RUSAGE_CHILDREN)."""

    def __init__(self, server_pids):
        self.pids = list(server_pids)
        self.t, self.m = time.monotonic(), machine_cpu()
        self.s, self.c = sum(proc_cpu(p) for p in self.pids), children_cpu()

    def core_share(self):
        dt = max(time.monotonic() - self.t, 1e-3)
        other = (machine_cpu() - self.m) - (sum(proc_cpu(p) for p in self.pids) - self.s) - \
            (children_cpu() - self.c)
        return max(other, 0.0) / dt


def wait_quiet(limit_s, server_pids, threshold=0.25):
    """Waits (at most limit_s) until other processes use under threshold of a core; returns the
    share of a core they used in the last half second."""
    deadline = time.monotonic() + limit_s
    while True:
        o = OtherLoad(server_pids)
        time.sleep(0.5)
        share = o.core_share()
        if share < threshold or time.monotonic() >= deadline:
            return share
        time.sleep(1.5)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


# --- a cluster over Redis (issue 13) -------------------------------------------------------

# The cluster configurations: server name -> nodes, each `tertulia --redis URL --node nK` on a
# Redis of the run's own; "tertulia" (one node on SQLite) runs beside them.
CLUSTER = {"tertulia-redis": 1, "tertulia-redis2": 2}
CLUSTER_CONFIGS = ["tertulia", "tertulia-redis", "tertulia-redis2"]
TARGET_REDIS_RATIO = 0.70  # one node on Redis keeps >= 70 % of SQLite's fan-out per CPU-second


class Deployment:
    """The processes one run measures: one server, or a cluster's nodes and its Redis."""

    def __init__(self, procs, ports, cmds):
        self.procs, self.ports, self.cmds = procs, ports, cmds
        self.redis = self.redis_port = self.redis_cmd = None

    def pids(self):
        return [p.pid for p in self.procs] + ([self.redis.pid] if self.redis else [])

    def counters(self):
        """The nodes' /metrics counters (summed) and Redis's EVALSHA stats."""
        out = {}
        for port in self.ports:
            for k, v in scrape_metrics(port).items():
                out[k] = out.get(k, 0) + v
        if self.redis:
            for k, v in redis_commandstats(self.redis_port).items():
                out[k] = v
        return out

    def stop(self, stop_server):
        """The nodes first (they let go of Redis), then Redis; each by its PID, bounded."""
        for p in self.procs:
            stop_server(p)
        if self.redis is not None:
            stop_server(self.redis)


def redis_call(port, *args, timeout=5.0):
    """One command to a Redis on 127.0.0.1:port; returns the reply's payload as text (a
    status, an integer or a bulk string), or raises OSError."""
    req = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req.encode())
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise OSError("redis closed the connection")
            buf += chunk
        head, rest = buf.split(b"\r\n", 1)
        if head[:1] == b"-":
            raise OSError(head[1:].decode())
        if head[:1] != b"$":
            return head[1:].decode()
        n = int(head[1:])
        while len(rest) < n + 2:
            chunk = s.recv(65536)
            if not chunk:
                raise OSError("redis closed the connection")
            rest += chunk
        return rest[:n].decode()


def start_redis(cpu, logdir, seq):
    """A throwaway redis-server on a free loopback port, pinned to cpu, with a data directory
    of its own in a temporary folder (removed when it is stopped), no snapshots and no AOF;
    waits (at most 10 s) until it answers PING. Returns (proc, port, cmd)."""
    port = free_port()
    scratch = tempfile.mkdtemp(prefix="bench-redis-")
    cmd = ["taskset", "-c", cpu, "redis-server", "--port", str(port), "--bind", "127.0.0.1",
           "--protected-mode", "yes", "--save", "", "--appendonly", "no", "--dir", scratch,
           "--daemonize", "no", "--loglevel", "warning"]
    logf = open(os.path.join(logdir, f"{seq:03d}-redis.log"), "w")
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=scratch)
    logf.close()
    proc.scratch = scratch
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if redis_call(port, "PING", timeout=0.5) == "PONG":
                return proc, port, cmd
        except OSError:
            time.sleep(0.05)
    Bench.stop_server(proc)
    raise RuntimeError(f"redis-server did not answer PING within 10 s: {' '.join(cmd)}")


def http_get(port, path, timeout=5.0):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


def wait_ready(port, proc, timeout=20.0):
    """Until /readyz says ready (a node's Redis links are up and its script loaded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if http_get(port, "/readyz", 1.0)[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


METRIC_KEYS = {
    'tertulia_messages_accepted_total{kind="room"}': "accepted_room",
    'tertulia_messages_accepted_total{kind="private"}': "accepted_private",
    "tertulia_store_commit_seconds_count": "batches",
    "tertulia_store_commit_seconds_sum": "batch_s",
    "tertulia_loop_iteration_seconds_count": "iterations",
}


def scrape_metrics(port):
    """The counters of METRIC_KEYS from a node's /metrics; {} if it cannot be read."""
    try:
        status, text = http_get(port, "/metrics")
    except OSError:
        return {}
    out = {}
    for line in text.splitlines() if status == 200 else []:
        name, _, value = line.rpartition(" ")
        if name in METRIC_KEYS:
            out[METRIC_KEYS[name]] = float(value)
    return out


def redis_commandstats(port):
    """EVALSHA calls and Redis's own microseconds in them (INFO commandstats)."""
    try:
        text = redis_call(port, "INFO", "commandstats")
    except OSError:
        return {}
    m = re.search(r"cmdstat_evalsha:calls=(\d+),usec=(\d+)", text)
    return {"evalsha_calls": int(m.group(1)), "evalsha_usec": int(m.group(2))} if m else {}


def rss_per_conn(key):
    """A run's server RSS growth per client at the point key of loadgen's server_rss_kb (ready,
    after, quiet), in bytes, or None."""
    def f(r):
        kb, n = r.get("server_rss_kb") or {}, r.get("clients")
        v, b = kb.get(key, -1), kb.get("before", -1)
        return (v - b) * 1024.0 / n if n and v >= 0 and b >= 0 else None
    return f


def counter_delta(a, b):
    return {k: round(b[k] - a.get(k, 0), 6) for k in b}


class Bench:
    def __init__(self, args):
        self.args = args
        self.plan = dict(PLANS[args.mode])
        if getattr(args, "reps", None):
            self.plan["reps"] = args.reps
        self.out = args.results
        self.bin = args.build_dir
        self.loadgen = os.path.join(self.bin, "bench", "loadgen")
        self.deadline = time.monotonic() + args.budget_min * 60
        self.runs_path = os.path.join(self.out, "runs.jsonl")
        self.logdir = os.path.join(self.out, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.seq = 0
        self.tertulia = args.tertulia or os.path.join(self.bin, "tertulia")
        help_text = ""
        try:
            help_text = subprocess.run([self.tertulia, "--help"], capture_output=True, text=True,
                                       timeout=10).stdout
        except OSError:
            pass
        self.tertulia_extra = ["--rate-limit", "0"] if "--rate-limit" in help_text else []
        self.bigroom_profile_args = None
        self.patient = True
        self.has_tls = "--listen-tls" in help_text
        self.has_redis = "--redis" in help_text
        self.tls_dir = None

    def tls_cert(self):
        """A self-signed ECDSA P-256 certificate for 127.0.0.1, made for this run in a scratch
        directory of its own (removed at the end); nothing is committed. Returns (cert, key)."""
        if self.tls_dir is None:
            self.tls_dir = tempfile.mkdtemp(prefix="bench-tls-")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                            "-keyout", os.path.join(self.tls_dir, "key.pem"),
                            "-out", os.path.join(self.tls_dir, "cert.pem")],
                           check=True, capture_output=True, timeout=30)
        return os.path.join(self.tls_dir, "cert.pem"), os.path.join(self.tls_dir, "key.pem")

    # --- servers ---------------------------------------------------------------------------

    def server_cmd(self, name, port, scratch):
        if name == "tertulia":
            # Its history store is a fresh SQLite file per run, as a new deployment has: never
            # the checkout's ./data, which other servers may hold and which would carry one
            # run's history into the next.
            return [self.tertulia, "--listen", f"127.0.0.1:{port}", "--log-level", "warn",
                    "--db", os.path.join(scratch, "tertulia.db"), *self.tertulia_extra]
        if name == "tertulia-prev":
            # The previous commit's build, same flags: a change is judged against what it
            # replaced, in the same run on the same machine.
            return [self.args.tertulia_prev, "--listen", f"127.0.0.1:{port}", "--log-level",
                    "warn", "--db", os.path.join(scratch, "tertulia.db"), *self.tertulia_extra]
        if name == "tertulia-tls":
            # The same server serving TLS only, on the run's own certificate.
            cert, key = self.tls_cert()
            return [self.tertulia, "--listen-tls", f"127.0.0.1:{port}", "--tls-cert", cert,
                    "--tls-key", key, "--log-level", "warn",
                    "--db", os.path.join(scratch, "tertulia.db"), *self.tertulia_extra]
        if name == "tertulia-mem":
            # The same server with its history in memory: the price of durability is the
            # difference between the two in the same run.
            return [self.tertulia, "--listen", f"127.0.0.1:{port}", "--log-level", "warn",
                    "--db", ":memory:", *self.tertulia_extra]
        if name == "ws":
            return ["node", os.path.join(ROOT, "bench/peers/ws_peer.mjs"), str(port)]
        if name == "tornado":
            return ["/usr/bin/python3", os.path.join(ROOT, "bench/peers/tornado_peer.py"),
                    str(port)]
        if name == "lws":
            return [os.path.join(self.bin, "bench", "lws_peer"), str(port)]
        if name == "uws":
            # Built outside the checkout by bench/peers/build_uws.sh (issue 15).
            return [self.args.uws_peer, str(port)]
        raise ValueError(name)

    def start_server(self, name, argv_extra=(), tag=None):
        port = free_port()
        scratch = tempfile.mkdtemp(prefix=f"bench-{name}-")
        cmd = ["taskset", "-c", self.args.server_cpu, *self.server_cmd(name, port, scratch),
               *argv_extra]
        self.seq += 1
        logf = open(os.path.join(self.logdir, f"{self.seq:03d}-{tag or name}.log"), "w")
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, preexec_fn=raise_nofile,
                                cwd=ROOT)
        logf.close()
        proc.scratch = scratch
        if not wait_port(port, proc):
            self.stop_server(proc)
            raise RuntimeError(f"{name} did not start listening: {' '.join(cmd)}")
        return proc, port, cmd

    def start_deployment(self, name):
        """What a run measures: one server, or (CLUSTER) a Redis and the cluster's nodes, all on
        the server CPU. Returns a Deployment; on failure everything started is stopped."""
        nodes = CLUSTER.get(name)
        if nodes is None:
            proc, port, cmd = self.start_server(name)
            return Deployment([proc], [port], [cmd])
        dep = Deployment([], [], [])
        try:
            dep.redis, dep.redis_port, rcmd = start_redis(self.args.server_cpu, self.logdir,
                                                          self.seq)
            dep.redis_cmd = rcmd
            url = f"redis://127.0.0.1:{dep.redis_port}/0"
            for i in range(nodes):
                proc, port, cmd = self.start_server("tertulia", ["--redis", url, "--node",
                                                                 f"n{i + 1}"], f"{name}-n{i + 1}")
                dep.procs.append(proc)
                dep.ports.append(port)
                dep.cmds.append(cmd)
            for proc, port in zip(dep.procs, dep.ports):
                if not wait_ready(port, proc):
                    raise RuntimeError(f"{name}: a node on port {port} did not become ready "
                                       "(/readyz) within 20 s")
        except Exception:
            dep.stop(self.stop_server)
            raise
        return dep

    @staticmethod
    def stop_server(proc):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(proc.scratch, ignore_errors=True)

    # --- one run -----------------------------------------------------------------------------

    def run_loadgen(self, server, dep, lg_args, bound_s):
        cmd = ["taskset", "-c", self.args.gen_cpu, self.loadgen,
               "--port", ",".join(str(p) for p in dep.ports),
               "--server-pid", ",".join(str(p.pid) for p in dep.procs), "--label", server,
               *(["--aux-pid", f"redis={dep.redis.pid}"] if dep.redis else []), *lg_args]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=bound_s,
                               preexec_fn=raise_nofile)
            lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
            result = json.loads(lines[-1]) if lines else None
            return cmd, p.returncode, result, p.stderr[-2000:]
        except subprocess.TimeoutExpired as e:
            err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
            return cmd, -1, None, f"timed out after {bound_s} s\n{err[-1500:]}"

    def record(self, **kw):
        with open(self.runs_path, "a") as f:
            f.write(json.dumps(kw) + "\n")

    def out_of_time(self):
        return time.monotonic() > self.deadline

    def one(self, server, scenario, lg_args, rep=0, extra=None, profile=False):
        """Starts a fresh server, runs the generator once, stops the server, records."""
        if self.out_of_time():
            self.record(server=server, scenario=scenario, rep=rep, exit=None, skipped=True,
                        result=None, cmd=None, **(extra or {}))
            log(f"{scenario} {server} rep {rep}: skipped, the time budget is spent")
            return None
        bound = 120 + sum(float(lg_args[i + 1]) for i, a in enumerate(lg_args)
                          if a in ("--duration", "--drain", "--setup-timeout"))
        try:
            dep = self.start_deployment(server)
        except RuntimeError as e:
            log(str(e))
            self.record(server=server, scenario=scenario, rep=rep, exit=None, result=None,
                        cmd=None, error=str(e), **(extra or {}))
            return None
        perf = None
        # Wait for a quiet machine, unless the last wait was in vain: work that stays (a
        # fuzzer, a long test) would only stretch the benchmark without making it quieter.
        busy_before = wait_quiet(self.args.quiet_wait if self.patient else 0, dep.pids())
        if busy_before >= 0.25 and self.patient:
            log(f"  the machine stays busy ({busy_before:.2f} of a core); not waiting for it "
                "until it is quiet again")
        self.patient = busy_before < 0.25
        counters = None
        try:
            if profile:
                perf = self.start_perf(dep.procs[0].pid, profile)
            load = OtherLoad(dep.pids())
            # A cluster scenario also reads the servers' own counters around the run: messages
            # per store batch (a SQLite transaction, a Redis pipeline) and the batch's time.
            c0 = dep.counters() if scenario.startswith("cluster") else None
            cmd, code, result, err = self.run_loadgen(server, dep, lg_args, bound)
            if c0 is not None:
                counters = counter_delta(c0, dep.counters())
            others = load.core_share()
        finally:
            if perf:
                self.stop_perf(perf)
            dep.stop(self.stop_server)
        short = "" if result is None else result.get("verdict", "")[:160]
        log(f"{scenario} {server} rep {rep}: exit {code}; {short}")
        if code not in (0, 2) and err:
            log(err.strip().splitlines()[-1] if err.strip() else "")
        if others > 0.25:
            log(f"  other processes used {others:.2f} of a core during that run")
        if dep.redis:
            extra = dict(extra or {}, node_cmds=dep.cmds, redis_cmd=dep.redis_cmd)
        if counters is not None:
            extra = dict(extra or {}, counters=counters)
        self.record(server=server, scenario=scenario, rep=rep, exit=code, result=result,
                    cmd=cmd, server_cmd=dep.cmds[0], stderr=err if code else "",
                    busy_before=round(busy_before, 3), others_core_share=round(others, 3),
                    **(extra or {}))
        return code, result

    # --- profiling ---------------------------------------------------------------------------

    def start_perf(self, pid, name):
        if not shutil.which("perf"):
            return None
        data = os.path.join(self.out, f"perf-{name}.data")
        p = subprocess.Popen(["perf", "record", "-F", "997", "-g", "-p", str(pid), "-o", data],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        return p, data, name

    def stop_perf(self, perf):
        """Writes perf-NAME.txt: self time by shared object (kernel, tertulia, libc...), then
        the hottest symbols."""
        p, data, name = perf
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        out = []
        for sort, limit, keep in (("dso", "0.5", 8), ("symbol", "1", 30)):
            rep = subprocess.run(["perf", "report", "--stdio", "--no-children", "--sort", sort,
                                  "--percent-limit", limit, "-g", "none", "-i", data],
                                 capture_output=True, text=True, timeout=120)
            lines = [l.rstrip(" -") for l in rep.stdout.splitlines()
                     if l.strip() and not l.startswith("#")]
            out.append("\n".join(lines[:keep]))
        with open(os.path.join(self.out, f"perf-{name}.txt"), "w") as f:
            f.write("\n\n".join(out) + "\n")
        # Inclusive shares of a few kernel paths (issue 15's breakdown): the loopback receive
        # work the server's sends run for the generator's sockets (softirq on the server's CPU),
        # the sends themselves, the reads, the store's writes.
        rep = subprocess.run(["perf", "report", "--stdio", "--children", "--sort", "symbol",
                              "-g", "none", "-i", data], capture_output=True, text=True,
                             timeout=120)
        shares = {}
        for l in rep.stdout.splitlines():
            m = re.match(r"\s*([\d.]+)%\s+[\d.]+%\s+\[([k.])\]\s+(\S+)", l)
            if m and m.group(3) not in shares:
                shares[m.group(3)] = float(m.group(1))
        with open(os.path.join(self.out, f"perf-{name}.json"), "w") as f:
            json.dump({k: shares.get(k) for k in PERF_PATHS}, f)

    # --- the scenarios -----------------------------------------------------------------------

    def run_all(self):
        plan, reps, servers = self.plan, self.plan["reps"], self.args.servers
        t0 = time.monotonic()
        skip = self.args.skip
        for sc in ("fanout", "private"):
            plain = sc not in skip
            typing = sc == "fanout" and "tertulia" in servers and \
                not skip & {"typing", "fanout_typing"}
            if not plain and not typing:
                continue
            for rep in range(reps):
                for s in servers:
                    if plain:
                        self.one(s, sc, plan[sc], rep)
                        if sc == "fanout" and s == "tertulia" and "mem" not in skip:
                            self.one("tertulia-mem", sc, plan[sc], rep)
                        if s == "tertulia" and self.args.tertulia_prev:
                            self.one("tertulia-prev", sc, plan[sc], rep)
                    if typing and s == "tertulia":
                        self.typing_pair(rep)
        if "bigroom" not in self.args.skip:
            self.bigroom(servers)
        if "bigroom_rates" not in skip and "bigroom" not in skip:
            self.bigroom_rates(servers)
        if "callgrind" not in skip and "tertulia" in servers:
            self.callgrind()
        if "idle" not in self.args.skip:
            for key, lg_args in plan["idle"]:
                for rep in range(reps):
                    for s in servers:
                        self.one(s, key, lg_args, rep)
                        if s == "tertulia" and self.args.tertulia_prev:
                            self.one("tertulia-prev", key, lg_args, rep)
        if "connect" not in self.args.skip:
            for rep in range(reps):
                for s in servers:
                    self.one(s, "connect", plan["connect"], rep)
        if "churn" not in self.args.skip and "tertulia" in servers:
            self.one("tertulia", "churn", plan["churn"], 0)
            if self.args.tertulia_prev:
                self.one("tertulia-prev", "churn", plan["churn"], 0)
        if "massclose" not in self.args.skip and "tertulia" in servers:
            self.massclose()
        if "tertulia" in servers:
            try:
                self.tls_pmd()
            finally:
                if self.tls_dir:
                    shutil.rmtree(self.tls_dir, ignore_errors=True)
        if "tertulia" in servers:
            self.run_cluster()
        if self.args.profile and "tertulia" in servers:
            self.one("tertulia", "profile", plan["fanout"], 0, profile="fanout")
            if self.bigroom_profile_args:
                self.one("tertulia", "profile", self.bigroom_profile_args, 0, profile="bigroom")
        log(f"all runs done in {time.monotonic() - t0:.0f} s")

    def cluster_missing(self):
        """Why the cluster scenarios cannot run here, or None."""
        if not shutil.which("redis-server"):
            return "no redis-server on PATH (scripts/deps.sh --test installs it)"
        if not self.has_redis:
            return f"{self.tertulia} has no --redis"
        return None

    def run_cluster(self):
        """Issue 13, side by side in one run, alternating configuration by configuration in
        every repetition: fan-out and private against one node on SQLite, one node on Redis
        and two nodes on Redis (the generator's clients spread over both: every room and every
        pair spans the two); then the fan-out at each window for SQLite and one Redis node."""
        skip, plan = self.args.skip, self.plan
        if "cluster" in skip:
            return
        why = self.cluster_missing()
        if why:
            log(f"cluster scenarios left out: {why}")
            self.record(server="tertulia-redis", scenario="cluster_missing", rep=0, exit=None,
                        result=None, cmd=None, error=why)
            return
        for rep in range(plan["reps"]):
            for sc in ("cluster_fanout", "cluster_private"):
                if sc not in skip:
                    for cfg in CLUSTER_CONFIGS:
                        self.one(cfg, sc, plan[sc], rep)
            if "cluster_load" in skip:
                continue
            for senders, w in plan["cluster_loads"]:
                lg = load_args(plan["cluster_fanout"], senders, w, plan["cluster_window_duration"])
                for cfg in ("tertulia", "tertulia-redis"):
                    self.one(cfg, f"cluster_s{senders}w{w}", lg, rep,
                             extra={"senders": senders, "window": w})

    def typing_pair(self, rep):
        """Issue 12: the fan-out with tertulia.v1 clients, without typing and with
        TYPING_SHARE of every room's members typing (a start every 2.5 s while the run sends),
        alternating, for tertulia and then the previous commit. Only tertulia speaks v1."""
        base = self.plan["fanout"]
        targets = ["tertulia"] + (["tertulia-prev"] if self.args.tertulia_prev else [])
        for srv in targets:
            self.one(srv, "fanout_v1", base + ["--v1"], rep)
            self.one(srv, "fanout_typing", base + ["--typing", str(TYPING_SHARE)], rep)

    def massclose(self):
        """A mass disconnect: bench/massclose.mjs with tertulia (and the previous commit beside
        it, interleaved), recorded as one run whose result holds every measurement."""
        if not os.path.isdir(os.path.join(ROOT, "node_modules", "ws")):
            log("massclose: no npm ws; left out")
            return
        if self.out_of_time():
            log("massclose: skipped, the time budget is spent")
            return
        out_json = os.path.join(self.out, "massclose.jsonl")
        cmd = ["node", os.path.join(ROOT, "bench/massclose.mjs"), "--bin", f"tertulia={self.tertulia}"]
        if self.args.tertulia_prev:
            cmd += ["--bin", f"tertulia-prev={self.args.tertulia_prev}"]
        for b in self.args.massclose_bin:
            cmd += ["--bin", b]
        cmd += [*self.plan["massclose"], "--json", out_json, "--server-cpu", self.args.server_cpu]
        log("massclose: " + " ".join(cmd))
        try:
            p = subprocess.run(["taskset", "-c", self.args.gen_cpu, *cmd], capture_output=True,
                               text=True, timeout=1200, preexec_fn=raise_nofile, cwd=ROOT)
            rc, err = p.returncode, p.stderr[-2000:]
        except subprocess.TimeoutExpired:
            rc, err = -1, "timed out after 1200 s"
        rows = []
        if rc == 0 and os.path.exists(out_json):
            with open(out_json) as f:
                rows = [json.loads(l) for l in f if l.strip()]
        self.record(server="tertulia", scenario="massclose", rep=0, exit=rc, cmd=cmd,
                    result={"rows": rows} if rows else None, stderr=None if rows else err)

    def tls_pmd(self):
        """Issue 10's figures, each beside its plain partner in the same run, the two
        alternating: fan-out with every client negotiating permessage-deflate vs none offering
        it (the same server, the same texts); fan-out, idle memory and connection rate over
        TLS vs plain."""
        plan, reps = self.plan, self.plan["reps"]
        for scenario, partner, server, skips in TLS_PMD:
            if any(k in self.args.skip for k in skips):
                continue
            if server == "tertulia-tls" and not self.has_tls:
                log(f"{scenario}: this tertulia has no --listen-tls; left out")
                continue
            key = {"fanout_deflate": "deflate_fanout"}.get(scenario, scenario)
            base = plan[key]
            if server == "tertulia-tls":
                measured = base + ["--tls-ca", self.tls_cert()[0]]
            else:
                measured = base + ["--deflate"]
            for rep in range(reps):
                self.one("tertulia", partner, base, rep)
                self.one(server, scenario, measured, rep)

    def bigroom_rates(self, servers):
        """Issue 15: the big room at 100, 200 and 400 msgs/s (0.5, 1 and 2 M deliveries/s), for
        tertulia, its previous commit and uWebSockets, the rates interleaved."""
        plan = self.plan
        who = [s for s in ("tertulia", "tertulia-prev", "uws")
               if s in servers or (s == "tertulia-prev" and self.args.tertulia_prev)]
        for rep in range(plan["reps"]):
            for rate in BIGROOM_RATES:
                for s in who:
                    self.one(s, "bigroom_rate",
                             ["--scenario", "bigroom", "--clients", str(plan["bigroom_clients"]),
                              "--rate", str(rate), "--duration", str(plan["bigroom_duration"]),
                              "--drain", "5"], rep, extra={"rate": rate})

    def callgrind(self):
        """User-space instructions per fan-out delivery (bench/callgrind_fanout.sh: valgrind,
        200 clients, 4 rooms, 400,000 deliveries), tertulia and its previous commit side by
        side: a count the machine's other work does not change."""
        if not shutil.which("valgrind") or self.out_of_time():
            log("callgrind: no valgrind, or no time left; skipped")
            return
        specs = [f"tertulia={self.tertulia}"]
        if self.args.tertulia_prev:
            specs.append(f"tertulia-prev={self.args.tertulia_prev}")
        cmd = ["bash", os.path.join(ROOT, "bench", "callgrind_fanout.sh"), *specs]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                               env=dict(os.environ, LOADGEN=self.loadgen))
            out, code = p.stdout, p.returncode
        except subprocess.TimeoutExpired:
            out, code = "", -1
        for line in out.splitlines():
            m = re.match(r"(\S+): ([\d,]+) instructions, ([\d,]+) deliveries, ([\d,.]+) per "
                         r"delivery.*\((.*)\)$", line)
            if m:
                self.record(server=m.group(1), scenario="callgrind", rep=0,
                            exit=0 if m.group(5).startswith("ok") else 1, cmd=cmd,
                            result={"instructions": int(m.group(2).replace(",", "")),
                                    "delivered": int(m.group(3).replace(",", "")),
                                    "per_delivery": float(m.group(4).replace(",", "")),
                                    "verdict": m.group(5)})
        log(f"callgrind: exit {code}; {out.strip()}")

    def bigroom(self, servers):
        """The sweep first: each server's rates go up until it falls behind (a message not
        delivered within the drain, or p99 over a second); then the fixed-rate comparison at the
        highest rate ws kept up with."""
        plan = self.plan
        base = ["--scenario", "bigroom", "--clients", str(plan["bigroom_clients"])]
        kept = {}
        for s in servers:
            kept[s] = None
            for rate in plan["sweep_rates"]:
                args = base + ["--rate", str(rate), "--duration", str(plan["sweep_duration"]),
                               "--drain", "2"]
                r = self.one(s, "sweep", args, 0, extra={"rate": rate})
                if r is not None and sweep_class(*r) != "sustained":
                    # One more try: on a shared machine one bad moment should not end a sweep.
                    r2 = self.one(s, "sweep", args, 1, extra={"rate": rate})
                    if r2 is not None and SWEEP_RANK[sweep_class(*r2)] < SWEEP_RANK[sweep_class(*r)]:
                        r = r2
                if r is None or sweep_class(*r) == "fell behind":
                    break
                kept[s] = rate
        fixed = kept.get("ws") or plan["sweep_rates"][0]
        # The profile of the big room is taken at the highest rate tertulia kept up with.
        self.bigroom_profile_args = base + ["--rate", str(kept.get("tertulia") or fixed),
                                            "--duration", str(plan["bigroom_duration"]),
                                            "--drain", "5"]
        log(f"bigroom fixed rate: {fixed} msgs/s (the highest ws kept up with)")
        for rep in range(plan["reps"]):
            for s in servers:
                self.one(s, "bigroom", base + ["--rate", str(fixed), "--duration",
                                               str(plan["bigroom_duration"]), "--drain", "5"],
                         rep, extra={"rate": fixed})


# --- the machine and the versions ---------------------------------------------------------


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=20).stdout.strip()
    except Exception:
        return ""


def machine_info(args):
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    mhz = sh("grep -m1 'cpu MHz' /proc/cpuinfo | cut -d: -f2").strip()
    mem = sh("grep MemTotal /proc/meminfo | awk '{print $2}'")
    ws_ver = ""
    try:
        with open(os.path.join(ROOT, "node_modules/ws/package.json")) as f:
            ws_ver = json.load(f)["version"]
    except OSError:
        pass
    tertulia = args.tertulia or os.path.join(args.build_dir, "tertulia")
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu, "mhz": mhz, "cores": os.cpu_count(),
        "mem_gib": round(int(mem or 0) / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
        "commit": sh(f"git -C {ROOT} rev-parse --short HEAD") or "none",
        "dirty": bool(sh(f"git -C {ROOT} status --porcelain -- src bench")),
        "versions": {
            "tertulia": sh(f"{tertulia} --version"),
            "cc": sh("cc --version | head -1"),
            "libuv": sh("pkg-config --modversion libuv"),
            "node": sh("node --version"),
            "ws": ws_ver,
            "python": sh("/usr/bin/python3 --version"),
            "tornado": sh("/usr/bin/python3 -c 'import tornado; print(tornado.version)'"),
            "libwebsockets": sh("pkg-config --modversion libwebsockets").rstrip("-"),
            "jansson": sh("pkg-config --modversion jansson"),
            "gnuplot": sh("gnuplot --version"),
            "redis": sh("redis-server --version | grep -o 'v=[0-9.]*' | cut -c3-"),
        },
        "prev_ref": os.environ.get("TT_BENCH_PREV_REF", ""),
        "build_type": sh(f"grep -m1 CMAKE_BUILD_TYPE: {args.build_dir}/CMakeCache.txt | cut -d= -f2"),
        "mode": args.mode,
        "server_cpu": args.server_cpu,
        "gen_cpu": args.gen_cpu,
    }


# --- the report ---------------------------------------------------------------------------


def load_runs(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def fmt(v, digits=0):
    if v is None:
        return "—"
    if abs(v) >= 100 or digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def stat(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def cell(st, digits=0, scale=1.0):
    if st is None:
        return "—"
    med, lo, hi = (x * scale for x in st)
    if lo == hi:
        return fmt(med, digits)
    return f"{fmt(med, digits)} ({fmt(lo, digits)}–{fmt(hi, digits)})"


class Report:
    def __init__(self, runs, meta):
        self.runs = runs
        self.meta = meta
        self.servers = [s for s in SERVERS if any(r["server"] == s for r in runs)]
        # A cluster run's counters (from the nodes' /metrics and Redis) beside its result, so
        # the tables' functions of a result can reach them.
        for r in runs:
            if r.get("counters") is not None and r.get("result"):
                r["result"]["_counters"] = r["counters"]

    def sel(self, scenario, server, ok_codes=(0,)):
        return [r for r in self.runs if r["scenario"] == scenario and r["server"] == server
                and r.get("exit") in ok_codes and r.get("result")]

    def all_of(self, scenario, server):
        return [r for r in self.runs if r["scenario"] == scenario and r["server"] == server]

    def metric(self, scenario, server, fn, ok_codes=(0,)):
        return stat([fn(r["result"]) for r in self.sel(scenario, server, ok_codes)])

    def med(self, scenario, server, fn, ok_codes=(0,)):
        st = self.metric(scenario, server, fn, ok_codes)
        return st[0] if st else None

    def runs_cell(self, scenario, server, ok_codes=(0,)):
        allr = [r for r in self.all_of(scenario, server) if not r.get("skipped")]
        ok = len(self.sel(scenario, server, ok_codes))
        return f"{ok}/{len(allr)}" if allr else "not run"

    def failures(self, scenario, server, ok_codes=(0,)):
        out = []
        for r in self.all_of(scenario, server):
            if r.get("skipped"):
                out.append("skipped (time budget)")
            elif r.get("exit") not in ok_codes:
                v = (r.get("result") or {}).get("verdict") or r.get("error") or \
                    (r.get("stderr") or "").strip().splitlines()[-1:] or ["no output"]
                out.append(v if isinstance(v, str) else v[0])
        return out

    def throughput_table(self, scenario, lines, servers=None):
        lines.append("| server | ok runs | delivered msgs/s | server core share | delivered per "
                     "server CPU-second | generator core share | p50 ms | p99 ms | p99.9 ms |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for s in servers or self.servers:
            m = lambda fn, sc=scenario: self.metric(sc, s, fn)
            lines.append(
                f"| {SERVER_TITLES[s]} | {self.runs_cell(scenario, s)} "
                f"| {cell(m(lambda r: r['delivered_per_s']))} "
                f"| {cell(m(lambda r: r['server_core_share']), 2)} "
                f"| {cell(m(lambda r: r['delivered_per_server_cpu_s']))} "
                f"| {cell(m(lambda r: r['gen_core_share']), 2)} "
                f"| {cell(m(lambda r: r['latency_us']['p50']), 2, 1e-3)} "
                f"| {cell(m(lambda r: r['latency_us']['p99']), 2, 1e-3)} "
                f"| {cell(m(lambda r: r['latency_us']['p999']), 2, 1e-3)} |")
        self.failure_notes(scenario, lines)

    def fanout_memory(self, L):
        """Server RSS growth per connection in the fan-out runs: once every client is logged in,
        right after the load, and after --quiet seconds with every connection open and idle."""
        per = rss_per_conn
        rows = [s for s in self.servers
                if any(per("quiet")(r["result"]) is not None for r in self.sel("fanout", s))]
        if not rows:
            return
        L.append("Server RSS growth per connection in the same runs (`VmRSS` less the figure "
                 "before the first connection, ÷ clients): with every client logged in, right "
                 "after the load, and after the generator's `--quiet` seconds with every "
                 "connection still open and idle. At 1,000 connections a server's one-off costs "
                 "(code paged in, caches) weigh a lot in these figures.")
        L.append("")
        L.append("| server | logged in, bytes | after the load, bytes | quiet, bytes |")
        L.append("|---|---|---|---|")
        for s in rows:
            m = lambda key: self.metric("fanout", s, per(key))
            L.append(f"| {SERVER_TITLES[s]} | {cell(m('ready'))} | {cell(m('after'))} "
                     f"| {cell(m('quiet'))} |")
        L.append("")

    def failure_notes(self, scenario, lines, ok_codes=(0,)):
        notes = []
        for s in self.servers:
            for f in sorted(set(self.failures(scenario, s, ok_codes))):
                notes.append(f"- {SERVER_TITLES[s]}: {f}")
        if notes:
            lines.append("")
            lines.append("Runs that gave no number:")
            lines.extend(notes)

    def saturation_note(self, scenario, lines):
        sat = [SERVER_TITLES[s] for s in self.servers
               if (self.med(scenario, s, lambda r: r["gen_core_share"]) or 0) >= 0.9]
        if sat:
            lines.append("")
            lines.append(f"The generator's core was saturated (≥ 90 %) against: {', '.join(sat)}. "
                         "There the delivered/s figure is the generator's limit, not the server's; "
                         "compare the delivered per server CPU-second column, which stays fair.")

    def ratio(self, a, b, higher_is_better=True):
        if a is None or b is None or a <= 0 or b <= 0:
            return None
        return a / b if higher_is_better else b / a

    def write(self, path_md, svg_name, cmdline):
        m = self.meta
        L = []
        L.append("# Benchmarks")
        L.append("")
        L.append(f"Generated by `{cmdline}` on {m['date']} ({m['mode']} mode) — do not edit by "
                 "hand; rerun the command to refresh it. Commit "
                 f"`{m['commit']}`{' with uncommitted changes' if m['dirty'] else ''}.")
        L.append("")
        shares = [r["others_core_share"] for r in self.runs
                  if r.get("others_core_share") is not None]
        if shares and statistics.median(shares) > 0.25:
            L.append(f"> **Warning:** the machine was busy with other work during this run (a "
                     f"median {statistics.median(shares):.2f} of a core, up to {max(shares):.2f}, "
                     "besides the server and the generator; see below). Both of its two cores "
                     "were shared, so absolute numbers are low and noisy, latencies most of all. "
                     "Rerun on a quiet machine for numbers to quote; the ratios and the "
                     "per-CPU-second figures suffer less.")
            L.append("")
        shares = [r["others_core_share"] for r in self.runs if r.get("others_core_share") is not None]
        if shares:
            busy = [r for r in self.runs if (r.get("others_core_share") or 0) > 0.25]
            L.append(f"Other processes used a median {statistics.median(shares):.2f} "
                     f"and at most {max(shares):.2f} of a core during the runs (the machine's "
                     "user+system time in `/proc/stat` less the server's and the generator's); "
                     f"{len(busy)} of {len(shares)} runs shared the machine with "
                     "more than a quarter of a core of other work" +
                     (": " + ", ".join(sorted(set(f"{r['scenario']} {r['server']}" for r in busy)))
                      if 0 < len(busy) <= 10 else "") + ".")
            L.append("")
        L.append("## Machine and versions")
        L.append("")
        v = m["versions"]
        L.append(f"- CPU: {m['cpu']}, {m['cores']} cores ({m['mhz']} MHz), {m['mem_gib']} GiB RAM; "
                 f"{m['os']}, Linux {m['kernel']}; open files per process: {m['nofile'][0]}")
        L.append(f"- Load average at start: {' '.join(m['loadavg_start'])}"
                 + (f"; scheduler autogroup of the run: `{m['autogroup']}`" if m.get("autogroup")
                    else ""))
        L.append(f"- tertulia: {v['tertulia'] or '?'} ({m['build_type'] or 'default'} build, "
                 f"{v['cc']}), libuv {v['libuv']}")
        L.append(f"- Node.js {v['node']} with ws {v['ws']}")
        L.append(f"- {v['python']} with Tornado {v['tornado']} (Debian)")
        L.append(f"- libwebsockets {v['libwebsockets']} (Debian), jansson {v['jansson']}")
        L.append(f"- {v['gnuplot']}")
        L.append("")
        L.append("## Method")
        L.append("")
        L.append(f"Each server runs pinned to CPU {m['server_cpu']} and the load generator "
                 f"(`bench/loadgen`, C on libuv, its own WebSocket client) to CPU {m['gen_cpu']} "
                 "with `taskset`. Every run starts a fresh server on a free loopback port. "
                 "All servers are driven through the original's legacy protocol at `/talking` "
                 "(`login`, `room`, `private`, no subprotocol), which tertulia's legacy mode "
                 "speaks and the peers in `bench/peers/` implement. The generator spreads its "
                 "connections over source addresses 127.0.0.2 and up, and verifies every delivery: "
                 "type, room or addressee, sender, the exact text (which carries sender, sequence "
                 "and send time), no duplicates, per-sender order. A run with any wrong, "
                 "duplicated, reordered or skipped delivery is a failed run and gives no number; "
                 "the tables count the runs that passed. Medians, with min–max in brackets.")
        L.append("")
        L.append("Server CPU is utime+stime from `/proc/PID/stat` over the measured window "
                 "(all threads); *server core share* is that over the wall time, and *delivered "
                 "per server CPU-second* divides the deliveries by it — the fair comparison when "
                 "the generator, not the server, is what saturates. Latency is from the send "
                 "time written in each message (the intended send time, in the open-loop big "
                 "room) to its arrival, for every recipient.")
        L.append("")
        L.append("The servers are started as:")
        L.append("")
        cmds = {}
        for r in self.runs:
            if r.get("server_cmd") and r["server"] not in cmds:
                cmds[r["server"]] = " ".join(re.sub(r"\d{4,5}$", "PORT", x) if i == len(r["server_cmd"]) - 1
                                             else x.replace(ROOT + "/", "")
                                             for i, x in enumerate(r["server_cmd"]))
                cmds[r["server"]] = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", cmds[r["server"]])
                cmds[r["server"]] = re.sub(r"--db \S+", "--db FRESH_DIR/tertulia.db",
                                           cmds[r["server"]])
        L.append("```")
        for s in self.servers:
            if s in cmds:
                L.append(cmds[s])
        L.append("```")
        L.append("")
        L.append("and the generator, per scenario (PORT and PID filled in per run):")
        L.append("")
        L.append("```")
        seen = []
        for r in self.runs:
            if not r.get("cmd") or r["server"] != self.servers[0]:
                continue
            c = [x.replace(ROOT + "/", "") for x in r["cmd"]]
            s = " ".join(c)
            s = re.sub(r"--port \d+", "--port PORT", s)
            s = re.sub(r"--server-pid \d+", "--server-pid PID", s)
            s = re.sub(r"--label \S+", "--label SERVER", s)
            if r["scenario"] == "sweep":
                s = re.sub(r"--rate \S+", "--rate RATE", s) + "    # the sweep"
            elif r["scenario"] == "profile":
                s += "    # under perf"
            if s not in seen:
                seen.append(s)
        L.extend(seen)
        L.append("```")
        L.append("")

        # fan-out
        L.append("## Fan-out")
        L.append("")
        L.append(self.scenario_caption("fanout"))
        L.append("")
        self.throughput_table("fanout", L)
        self.saturation_note("fanout", L)
        L.append("")
        self.fanout_memory(L)
        if self.sel("fanout", "tertulia-mem"):
            L.append("### The price of durability")
            L.append("")
            L.append("The same fan-out, in the same run, against tertulia with its history in a "
                     "SQLite file (every room message committed, in one transaction per loop "
                     "iteration, before anyone receives it) and with `--db :memory:` (the same "
                     "code path, no file).")
            L.append("")
            self.throughput_table("fanout", L, ["tertulia", "tertulia-mem"])
            disk = self.med("fanout", "tertulia", lambda r: r["delivered_per_server_cpu_s"])
            mem = self.med("fanout", "tertulia-mem", lambda r: r["delivered_per_server_cpu_s"])
            if disk and mem:
                L.append("")
                L.append(f"Delivered per server CPU-second with the file is {disk / mem:.2f}× "
                         "that with history in memory.")
            L.append("")
        if self.sel("fanout", "tertulia-prev"):
            L.append("### Against the previous commit")
            L.append("")
            L.append("The same scenarios, in the same run, against the build of the commit "
                     f"before this one (`{self.meta.get('prev_ref', 'HEAD~1')}`, built with the "
                     "same flags): a change to the send or receive path is judged against what "
                     "it replaced.")
            L.append("")
            self.throughput_table("fanout", L, ["tertulia", "tertulia-prev"])
            now = self.med("fanout", "tertulia", lambda r: r["delivered_per_server_cpu_s"])
            prev = self.med("fanout", "tertulia-prev", lambda r: r["delivered_per_server_cpu_s"])
            if now and prev:
                L.append("")
                L.append(f"Fan-out delivered per server CPU-second: {now / prev:.3f}× the previous "
                         "commit's.")
            idle_keys = [k for k in dict.fromkeys(r["scenario"] for r in self.runs)
                         if k.startswith("idle")]
            if idle_keys:
                L.append("")
                L.append("| idle scenario | this commit, RSS bytes per connection | previous "
                         "commit | ratio |")
                L.append("|---|---|---|---|")
                for key in idle_keys:
                    a = self.med(key, "tertulia", lambda r: r["rss_per_conn_bytes"])
                    b = self.med(key, "tertulia-prev", lambda r: r["rss_per_conn_bytes"])
                    ratio = f"{a / b:.3f}" if a and b else "—"
                    L.append(f"| {key} | {fmt(a)} | {fmt(b)} | {ratio} |")
            L.append("")
        self.typing_section(L)
        L.append("## Private messages")
        L.append("")
        L.append(self.scenario_caption("private"))
        L.append("")
        self.throughput_table("private", L)
        self.saturation_note("private", L)
        L.append("")

        # big room
        L.append("## Big room")
        L.append("")
        sweep = [r for r in self.runs if r["scenario"] == "sweep"]
        fixed_rate = next((r.get("rate") for r in self.runs if r["scenario"] == "bigroom"), None)
        clients = next((r["result"]["clients"] for r in self.runs
                        if r["scenario"] in ("bigroom", "sweep") and r.get("result")), None)
        L.append(f"{fmt(clients)} clients in one room; one sender at a fixed rate, open loop "
                 "(latency from each message's intended send time, so a lagging generator shows "
                 "as latency). Each message fans out to every member, so deliveries/s is rate × "
                 "members. The sweep raises the rate, with a fresh server at each step, until the "
                 "server falls behind (a message not delivered within 2 s of the end, or p99 over "
                 f"{KEEPUP_P99_MS / 1000:.0f} s). A rate is *sustained* when everything arrives with "
                 f"p99 under {TARGET_P99_MS:.0f} ms, and *kept up with* when everything arrives "
                 f"with p99 under {KEEPUP_P99_MS / 1000:.0f} s. At the lowest rates the p99 is "
                 "about the time a server takes to write one message to every member's socket.")
        L.append("")
        self.sustained, self.kept = {}, {}
        if sweep:
            L.append("| server | rates tried: msgs/s → p99 ms | highest rate sustained | highest "
                     "rate kept up with | generator core share where it fell behind |")
            L.append("|---|---|---|---|---|")
            for s in self.servers:
                rates = list(dict.fromkeys(r["rate"] for r in sweep if r["server"] == s))
                parts, sus, kept, fail_gen, fell = [], None, None, None, False
                for rate in rates:
                    tries = [r for r in sweep if r["server"] == s and r["rate"] == rate]
                    r = sweep_best(tries)
                    if r is None:
                        parts.append(f"{rate}: skipped")
                        continue
                    res = r.get("result")
                    p99 = res["latency_us"]["p99"] / 1000 if res else None
                    cls = sweep_class(r.get("exit"), res)
                    note = {"sustained": "", "kept up": " (over 50 ms)",
                            "fell behind": " (fell behind" +
                            (f", exit {r.get('exit')}" if r.get("exit") not in (0, None) else "")
                            + ")"}[cls]
                    parts.append(f"{r['rate']} → {fmt(p99, 1) if p99 is not None else '—'}{note}"
                                 + (" [best of 2]" if len(tries) > 1 else ""))
                    if cls == "sustained" and not fell:
                        sus = r["rate"]
                    if cls != "fell behind" and not fell:
                        kept = r["rate"]
                    if cls == "fell behind":
                        fell = True
                        fail_gen = res["gen_core_share"] if res else None
                self.sustained[s], self.kept[s] = sus, kept
                top = max(PLANS[self.meta["mode"]]["sweep_rates"])
                show = lambda v: "none" if v is None else (f"≥ {v}" if v == top else f"{v}")
                L.append(f"| {SERVER_TITLES[s]} | {'; '.join(parts)} | {show(sus)} | {show(kept)} "
                         f"| {fmt(fail_gen, 2) if fail_gen is not None else '—'} |")
            L.append("")
        if fixed_rate:
            L.append(f"At the fixed rate of {fixed_rate} msgs/s (the highest ws kept up with), "
                     f"{self.meta['reps']} runs each:")
            L.append("")
            L.append("| server | runs that kept up | p50 ms | p99 ms | p99.9 ms | server core share "
                     "| generator core share | undelivered at the deadline / lost on close |")
            L.append("|---|---|---|---|---|---|---|---|")
            for s in self.servers:
                m = lambda fn: self.metric("bigroom", s, fn, (0, 2))
                lost = self.metric("bigroom", s, lambda r: r["loss"]["late"] +
                                   r["loss"]["dropped_on_close"], (0, 2))
                L.append(f"| {SERVER_TITLES[s]} | {self.runs_cell('bigroom', s)} "
                         f"| {cell(m(lambda r: r['latency_us']['p50']), 2, 1e-3)} "
                         f"| {cell(m(lambda r: r['latency_us']['p99']), 2, 1e-3)} "
                         f"| {cell(m(lambda r: r['latency_us']['p999']), 2, 1e-3)} "
                         f"| {cell(m(lambda r: r['server_core_share']), 2)} "
                         f"| {cell(m(lambda r: r['gen_core_share']), 2)} | {cell(lost)} |")
            self.failure_notes("bigroom", L, (0, 2))
            L.append("")

        # idle
        L.append("## Idle memory")
        L.append("")
        idle_keys = [k for k in dict.fromkeys(r["scenario"] for r in self.runs)
                     if k.startswith("idle")]
        L.append("Logged-in idle connections, spread over 100 rooms (20 in quick mode), held "
                 "for a moment; the server's RSS (`VmRSS` in `/proc/PID/status`) before the "
                 "first connection and after the last, divided by the number of connections. "
                 "The kernel's own socket memory is apart: *kernel buffers* is the TCP memory of "
                 "`/proc/net/sockstat`, *kernel slab* the change of `Slab` in `/proc/meminfo`; both "
                 "are machine-wide and so count the generator's end of each connection too.")
        L.append("")
        L.append("| server | connections | ok runs | RSS per connection, bytes | kernel buffers "
                 "per connection, bytes | kernel slab per connection (both ends), bytes |")
        L.append("|---|---|---|---|---|---|")
        for key in idle_keys:
            for s in self.servers:
                n = next((r["result"]["clients"] for r in self.runs
                          if r["scenario"] == key and r.get("result")), None)
                m = lambda fn: self.metric(key, s, fn)
                L.append(f"| {SERVER_TITLES[s]} | {fmt(n)} | {self.runs_cell(key, s)} "
                         f"| {cell(m(lambda r: r['rss_per_conn_bytes']))} "
                         f"| {cell(m(lambda r: r['kernel_tcp_mem_per_conn_bytes']))} "
                         f"| {cell(m(lambda r: r.get('kernel_slab_per_conn_bytes')))} |")
        for key in idle_keys:
            self.failure_notes(key, L)
        L.append("")
        big_idle = idle_keys[-1] if idle_keys else None
        per = self.med(big_idle, "tertulia", lambda r: r["rss_per_conn_bytes"]) if big_idle else None
        slab = self.med(big_idle, "tertulia", lambda r: r.get("kernel_slab_per_conn_bytes")) \
            if big_idle else None
        if per is not None:
            L.append("What that means at scale for tertulia (user-space RSS only, plus the kernel's "
                     "slab for the server's half, taken as half the measured pair):")
            L.append("")
            for n in (100_000, 1_000_000):
                user = per * n
                kern = (slab / 2 * n) if slab and slab > 0 else None
                L.append(f"- {n:,} connections: {per:,.0f} B × {n:,} = {user / 2**20:,.0f} MiB of "
                         f"server RSS" + (f"; kernel slab ≈ {slab / 2:,.0f} B × {n:,} = "
                                          f"{kern / 2**20:,.0f} MiB" if kern else "")
                         + f"; and an open-file limit above {n:,}.")
            L.append("")

        # connect
        L.append("## Connection rate")
        L.append("")
        L.append(self.scenario_caption("connect"))
        L.append("")
        L.append("| server | ok runs | handshakes + logins per second | p50 ms | p99 ms | server "
                 "core share | generator core share |")
        L.append("|---|---|---|---|---|---|---|")
        for s in self.servers:
            m = lambda fn: self.metric("connect", s, fn)
            L.append(f"| {SERVER_TITLES[s]} | {self.runs_cell('connect', s)} "
                     f"| {cell(m(lambda r: r['connects_per_s']))} "
                     f"| {cell(m(lambda r: r['latency_us']['p50']), 2, 1e-3)} "
                     f"| {cell(m(lambda r: r['latency_us']['p99']), 2, 1e-3)} "
                     f"| {cell(m(lambda r: r['server_core_share']), 2)} "
                     f"| {cell(m(lambda r: r['gen_core_share']), 2)} |")
        self.failure_notes("connect", L)
        L.append("")

        churn = [r for r in self.runs if r["scenario"] == "churn" and r.get("result")
                 and r["server"] == "tertulia"]
        churn_prev = [r for r in self.runs if r["scenario"] == "churn" and r.get("result")
                      and r["server"] == "tertulia-prev"]
        if churn:
            res = churn[0]["result"]
            L.append("## Connection churn (tertulia)")
            L.append("")
            L.append(f"{res['clients']:,} connections opened (each confirmed logged in) and closed "
                     f"again, {len(res.get('churn', []))} times; the server's RSS before, with all "
                     "open, and a moment after all closed (`bench/churn.sh` does the same on its "
                     "own):")
            L.append("")
            prev = churn_prev[0]["result"].get("churn", []) if churn_prev else []
            L.append("| cycle | RSS with all open, KiB | RSS after closing, KiB | server CPU to "
                     "close them all, ms | the same at the previous commit, ms |")
            L.append("|---|---|---|---|---|")
            L.append(f"| before | {res['server_rss_kb']['before']:,} | | | |")
            for i, c in enumerate(res.get("churn", []), 1):
                p_ms = prev[i - 1].get("close_cpu_ms") if i - 1 < len(prev) else None
                L.append(f"| {i} | {c['rss_open_kb']:,} | {c['rss_closed_kb']:,} "
                         f"| {fmt(c.get('close_cpu_ms'), 1)} | {fmt(p_ms, 1)} |")
            L.append("")
            L.append(f"Result: {res['verdict']}.")
            L.append("")

        self.massclose_section(L)
        self.tls_pmd_section(L)
        self.cluster_section(L)

        # ratios and targets
        L.append("## Ratios (tertulia ÷ peer, same run)")
        L.append("")
        L.append("| measure | " + " | ".join(SERVER_TITLES[s] for s in self.servers
                                            if s != "tertulia") + " |")
        L.append("|---|" + "---|" * (len(self.servers) - 1))
        peers = [s for s in self.servers if s != "tertulia"]

        def row(title, fn, higher=True):
            cells = []
            for p in peers:
                rt = self.ratio(fn("tertulia"), fn(p), higher)
                cells.append("—" if rt is None else f"{rt:,.1f}×")
            L.append(f"| {title} | " + " | ".join(cells) + " |")
            return {p: self.ratio(fn("tertulia"), fn(p), higher) for p in peers}

        fan_cpu = row("fan-out: delivered per server CPU-second",
                      lambda s: self.med("fanout", s, lambda r: r["delivered_per_server_cpu_s"]))
        row("fan-out: delivered msgs/s",
            lambda s: self.med("fanout", s, lambda r: r["delivered_per_s"]))
        row("private: delivered per server CPU-second",
            lambda s: self.med("private", s, lambda r: r["delivered_per_server_cpu_s"]))
        row("private: delivered msgs/s",
            lambda s: self.med("private", s, lambda r: r["delivered_per_s"]))
        big_p99 = row("big room at the fixed rate: p99 (peer ÷ tertulia)",
                      lambda s: self.med("bigroom", s, lambda r: r["latency_us"]["p99"], (0, 2)),
                      higher=False)
        sustained = getattr(self, "sustained", {})
        kept = getattr(self, "kept", {})
        big_rate = row("big room: highest rate sustained (p99 < 50 ms)", lambda s: sustained.get(s))
        row("big room: highest rate kept up with", lambda s: kept.get(s))
        if big_idle:
            row(f"idle: RSS per connection ({big_idle.split('_')[1]}; peer ÷ tertulia)",
                lambda s: self.med(big_idle, s, lambda r: r["rss_per_conn_bytes"]), higher=False)
        row("connections per second",
            lambda s: self.med("connect", s, lambda r: r["connects_per_s"]))
        L.append("")

        L.append("## The targets")
        L.append("")
        L.append("From issue 6, on this machine, in this run:")
        L.append("")

        def verdict(r, need):
            if r is None:
                return "**not measured** (a run failed or was not made)"
            return ("**holds**" if r >= need else "**does not hold**") + f" ({r:,.1f}×)"
        L.append(f"- Fan-out, delivered per server CPU-second ≥ 10× ws: "
                 f"{verdict(fan_cpu.get('ws'), 10)}; ≥ 50× Tornado: "
                 f"{verdict(fan_cpu.get('tornado'), 50)}; ≥ 2× libwebsockets: "
                 f"{verdict(fan_cpu.get('lws'), 2)}.")
        L.append(f"- Big room at a rate ws keeps up with, tertulia's p99 ≤ 1/5 of ws's: "
                 f"{verdict(big_p99.get('ws'), 5)}.")
        top = max(PLANS[self.meta["mode"]]["sweep_rates"])
        t_sus, w_sus = sustained.get("tertulia"), sustained.get("ws")
        notes = []
        if t_sus == top:
            notes.append(f"tertulia sustained the highest rate tried ({top}/s), so its true "
                         "limit is higher")
        fell = [r for r in sweep if r["server"] == "tertulia" and r.get("result")
                and kept.get("tertulia") is not None and r["rate"] > kept["tertulia"]]
        if fell and fell[0]["result"]["gen_core_share"] >= 0.9:
            notes.append("where tertulia fell behind the generator's core was saturated "
                         f"({fell[0]['result']['gen_core_share']:.2f}): that limit is the "
                         "generator's")
        if t_sus is None and w_sus is None:
            low = min(PLANS[self.meta["mode"]]["sweep_rates"])
            p99s = [r["result"]["latency_us"]["p99"] / 1000 for r in sweep
                    if r.get("result") and r.get("rate") == low]
            v = ("**not reached by any server**: none delivered even the lowest rate "
                 f"({low}/s) with p99 under {TARGET_P99_MS:.0f} ms"
                 + (f" (p99 {min(p99s):,.0f}–{max(p99s):,.0f} ms): writing one message to "
                    f"{fmt(clients)} sockets through loopback TCP takes about that long here"
                    if p99s else ""))
        elif w_sus is None:
            v = (f"**holds** (tertulia sustained {t_sus}/s; ws sustained no rate tried, down "
                 f"to {min(PLANS[self.meta['mode']]['sweep_rates'])}/s)")
        else:
            v = verdict(big_rate.get("ws"), 10)
        L.append(f"- Big room, highest sustainable rate (p99 under {TARGET_P99_MS:.0f} ms, no loss) "
                 f"≥ 10× ws's: {v}" + ("; " + "; ".join(notes) if notes else "") + ".")
        idle_per = per
        if idle_per is not None:
            L.append(f"- Idle memory ≤ 2 KiB of server RSS per logged-in connection at "
                     f"{big_idle.split('_')[1]}: "
                     f"{'**holds**' if idle_per <= 2048 else '**does not hold**'} "
                     f"({idle_per:,.0f} bytes).")
        else:
            L.append("- Idle memory ≤ 2 KiB per connection: **not measured**.")
        L.append("- At the open-file limit, new connections refused cleanly and accepting resumes: "
                 "checked by the integration tests, not by this benchmark.")
        L.append("")
        self.issue15_section(L)
        outdir = os.path.dirname(self.meta["runs_path"])
        profiles = [(n, os.path.join(outdir, f"perf-{n}.txt")) for n in ("fanout", "bigroom")]
        profiles = [(n, p) for n, p in profiles if os.path.exists(p)]
        if profiles:
            L.append("## Where tertulia's time goes")
            L.append("")
            L.append("`perf record -F 997 -g -p PID` on the server during extra runs (these runs "
                     "are not in the tables): self time by shared object (`[kernel.kallsyms]` is "
                     "the kernel: TCP, loopback, syscalls), then by symbol above 1 % (`[k]` "
                     "kernel, `[.]` user space).")
            L.append("")
            for n, p in profiles:
                run = next((r for r in self.runs if r["scenario"] == "profile" and r.get("cmd")
                            and ("bigroom" in r["cmd"]) == (n == "bigroom")), None)
                what = {"fanout": "Fan-out", "bigroom": "Big room"}[n]
                args = ""
                if run:
                    c = run["cmd"]
                    args = " ".join(c[c.index("--scenario"):])
                L.append(f"{what} (`{args}`):")
                L.append("")
                L.append("```")
                with open(p) as f:
                    L.append(f.read().rstrip())
                L.append("```")
                L.append("")
        L.append("## Chart")
        L.append("")
        L.append(f"![delivered msgs/s and p99 latency per server]({svg_name})")
        L.append("")
        L.append("Raw results, one JSON line per run, are in "
                 f"`{os.path.relpath(self.meta['runs_path'], ROOT)}` (not committed).")
        L.append("")
        L = keep_hand_sections(path_md, L)
        with open(path_md, "w") as f:
            f.write("\n".join(L))

    def issue15_section(self, L):
        """Issue 15's targets, each against the previous commit and uWebSockets in this run,
        and where a fan-out delivery's server CPU goes."""
        who = [s for s in ("tertulia", "tertulia-prev", "uws")
               if self.sel("fanout", s) or self.sel("bigroom_rate", s)
               or self.sel("callgrind", s)]
        if "tertulia" not in who:
            return

        def per_delivery(key):
            def f(r):
                v, d = r.get(key), r.get("delivered")
                return 1e9 * v / d if v is not None and v >= 0 and d else None
            return f

        def p99_at(rate):
            def f(s):
                rs = [r for r in self.sel("bigroom_rate", s) if r.get("rate") == rate]
                v = [r["result"]["latency_us"]["p99"] / 1000 for r in rs]
                return statistics.median(v) if v else None
            return f

        def kept_at(rate, s):
            rs = [r for r in self.all_of("bigroom_rate", s) if r.get("rate") == rate]
            return sum(1 for r in rs if r.get("exit") == 0), len(rs)

        fan = lambda s: self.med("fanout", s, per_delivery("server_cpu_s"))
        fa = PLANS[self.meta["mode"]]["fanout"]
        shape = f"{int(fa[fa.index('--clients') + 1]):,} clients, {fa[fa.index('--rooms') + 1]} rooms"
        members = f"{PLANS[self.meta['mode']]['bigroom_clients']:,}"
        rows = [
            (f"fan-out: server CPU per delivery, ns ({shape})",
             f"≤ {TARGET_NS_PER_DELIVERY:.0f}", fan, 0, lambda v: v <= TARGET_NS_PER_DELIVERY),
            ("… of it in user space, ns", "", lambda s: self.med(
                "fanout", s, per_delivery("server_utime_s")), 0, None),
            ("… in the kernel, ns", "", lambda s: self.med(
                "fanout", s, per_delivery("server_stime_s")), 0, None),
            ("… of that, softirq on the server's CPU (the generator's sockets receiving), ns",
             "", lambda s: self.med("fanout", s, per_delivery("server_cpu_softirq_s")), 0, None),
            ("fan-out: user-space instructions per delivery (callgrind, 200 clients, 4 rooms)",
             "", lambda s: self.med("callgrind", s, lambda r: r["per_delivery"]), 1, None),
        ]
        for rate in BIGROOM_RATES:
            need = BIGROOM_P99_TARGET.get(rate)
            n = PLANS[self.meta["mode"]]["bigroom_clients"]
            rows.append((f"big room, {members} members at {rate} msgs/s "
                         f"({rate * n / 1e6:g} M deliveries/s): p99 ms",
                         f"≤ {need:.0f}" if need else "", p99_at(rate), 1,
                         (lambda v, n=need: v <= n) if need else None))
        rows += [
            ("idle, 19,000 logged-in connections: RSS per connection, bytes",
             f"≤ {TARGET_IDLE_BYTES:,.0f}", lambda s: self.med(
                 "idle_19k", s, lambda r: r["rss_per_conn_bytes"]), 0,
             lambda v: v <= TARGET_IDLE_BYTES),
            (f"fan-out, {shape}: RSS per connection right after the load, bytes",
             f"≤ {TARGET_LOAD_BYTES:,.0f}", lambda s: self.med("fanout", s,
                                                               rss_per_conn("after")), 0,
             lambda v: v <= TARGET_LOAD_BYTES),
            ("… and 3 s later, every connection open and quiet, bytes",
             f"≤ {TARGET_LOAD_BYTES:,.0f}", lambda s: self.med("fanout", s,
                                                               rss_per_conn("quiet")), 0,
             lambda v: v <= TARGET_LOAD_BYTES),
            ("private pairs (500): messages per server CPU-second",
             f"≥ {TARGET_PRIVATE_PER_CPU_S / 1000:.0f}k", lambda s: self.med(
                 "private", s, lambda r: r["sent"] / r["server_cpu_s"]
                 if r.get("server_cpu_s", 0) > 0 else None), 0,
             lambda v: v >= TARGET_PRIVATE_PER_CPU_S),
        ]
        prev = os.environ.get("TT_BENCH_PREV_REF") or self.meta.get("prev_ref") or "the previous commit"
        L.append("## The targets of issue 15")
        L.append("")
        L.append("tertulia against its previous commit and, when a build of it was present, "
                 "uWebSockets (`bench/peers/uws_peer.cpp`), in this run: medians of the runs "
                 "above and of the fixed-rate big room runs below (server CPU is all its "
                 "threads; *softirq* is the softirq time of CPU 0, where the server runs, which "
                 "on loopback is mostly the generator's sockets receiving what the server sends, "
                 "and which the kernel counts in the server's system time).")
        L.append("")
        heads = {"tertulia": "tertulia", "tertulia-prev": "previous commit",
                 "uws": "uWebSockets"}
        L.append("| measure | target | " + " | ".join(heads[s] for s in who) + " | verdict |")
        L.append("|---|---|" + "---|" * len(who) + "---|")
        verdicts = []
        for title, target, fn, digits, ok in rows:
            vals = {s: fn(s) for s in who}
            v = vals.get("tertulia")
            verdict = "" if ok is None else ("**not measured**" if v is None else
                                             "**holds**" if ok(v) else "**does not hold**")
            if ok is not None:
                verdicts.append((title, verdict))
            L.append(f"| {title} | {target} | " +
                     " | ".join("—" if vals[s] is None else fmt(vals[s], digits) for s in who) +
                     f" | {verdict} |")
        L.append("")
        kept = []
        for rate in BIGROOM_RATES:
            parts = []
            for s in who:
                k, n = kept_at(rate, s)
                if n:
                    parts.append(f"{heads[s]} {k}/{n}")
            if parts:
                kept.append(f"{rate}/s: " + ", ".join(parts))
        if kept:
            L.append("Big room runs that kept up (every message delivered to every member "
                     "within the drain): " + "; ".join(kept) + ".")
            L.append("")
        t, u, pv = fan("tertulia"), fan("uws"), fan("tertulia-prev")
        if t and pv:
            L.append(f"Fan-out server CPU per delivery, tertulia's ÷ the other's (below 1 is "
                     f"cheaper): {t / pv:.2f}× that of {prev} ({fmt(pv)} ns)"
                     + (f", {t / u:.2f}× uWebSockets' ({fmt(u)} ns)" if u else "") + ".")
            L.append("")
        outdir = os.path.dirname(self.meta["runs_path"])
        pj = os.path.join(outdir, "perf-fanout.json")
        if t and os.path.exists(pj):
            with open(pj) as f:
                sh = json.load(f)
            names = {"handle_softirqs": "softirq: the loopback receive work for the "
                     "generator's sockets", "__sys_sendto": "send() (corked writes), with "
                     "the softirq it runs", "do_writev": "writev() (pieces by reference)",
                     "ksys_read": "read() (requests)", "__sys_recvfrom": "recv()",
                     "__x64_sys_epoll_wait": "epoll_wait",
                     "__x64_sys_pwrite64": "pwrite (the store's WAL)",
                     "__x64_sys_fdatasync": "fdatasync (the store's commits)"}
            L.append(f"Where a fan-out delivery's {fmt(t)} ns go, by perf's inclusive share of "
                     "the profile run (below) applied to the median above:")
            L.append("")
            L.append("| path | share of the server's samples | ns per delivery |")
            L.append("|---|---|---|")
            for k in PERF_PATHS:
                v = sh.get(k)
                if v:
                    L.append(f"| {names[k]} | {v:.1f} % | {t * v / 100:,.0f} |")
            L.append("")
        missed = [t for t, v in verdicts if v != "**holds**"]
        L.append("Targets not met in this run: " + ("; ".join(missed) or "none") + ".")
        L.append("")
        if self.meta.get("chart15"):
            L.append(f"![issue 15: the big room's p99 by rate, and fan-out CPU per delivery]"
                     f"({self.meta['chart15']})")
            L.append("")

    def pair_rows(self, rows, lines, cols):
        """A table of (title, scenario, server) rows with the columns cols: (heading, fn,
        digits, scale)."""
        lines.append("| configuration | ok runs | " + " | ".join(c[0] for c in cols) + " |")
        lines.append("|---|---|" + "---|" * len(cols))
        notes = []
        for title, sc, sv in rows:
            cells = [cell(self.metric(sc, sv, fn), d, k) for _, fn, d, k in cols]
            lines.append(f"| {title} | {self.runs_cell(sc, sv)} | " + " | ".join(cells) + " |")
            notes += [f"- {title}: {f}" for f in sorted(set(self.failures(sc, sv)))]
        if notes:
            lines.append("")
            lines.append("Runs that gave no number:")
            lines.extend(notes)
        lines.append("")

    def pair_ratio(self, a, b, fn):
        x = self.med(a[0], a[1], fn)
        y = self.med(b[0], b[1], fn)
        return (x / y) if x and y and x > 0 and y > 0 else None

    def typing_section(self, L):
        """Issue 12's fan-out with typing traffic, beside the same fan-out without it."""
        if not (self.all_of("fanout_typing", "tertulia") or self.all_of("fanout_v1", "tertulia")):
            return
        res = next((r["result"] for r in self.sel("fanout_typing", "tertulia")), None) or {}
        typ = res.get("typing") or {}
        L.append("### Fan-out with typing traffic")
        L.append("")
        L.append("The fan-out above with `tertulia.v1` clients (`--v1`: only they may send "
                 "typing; the peers do not speak it), without typing and with "
                 f"{TYPING_SHARE:.0%} of every room's members typing (`--typing "
                 f"{TYPING_SHARE}`: every {round(1 / TYPING_SHARE)}th member, "
                 f"{typ.get('typists', '?')} typists in "
                 "all, each sending `{\"type\":\"typing\",\"to\":ROOM,\"state\":\"start\"}` every "
                 "2.5 s while the run sends, the first ones spread over 2.5 s), the two "
                 "alternating run for run, for this commit and the previous one. Every typing "
                 "frame received is checked (its room, a typist of that room, start or stop) and "
                 "counted, never as a delivery; *expected* is what the starts sent call for (the "
                 "room's other members), and the server leaves a typing frame out for a "
                 "recipient whose queue is half full. The legacy fan-out of the table above is "
                 "the first row.")
        L.append("")
        tput = [("delivered msgs/s", lambda r: r["delivered_per_s"], 0, 1.0),
                ("server core share", lambda r: r["server_core_share"], 2, 1.0),
                ("delivered per server CPU-second", lambda r: r["delivered_per_server_cpu_s"], 0,
                 1.0),
                ("generator core share", lambda r: r["gen_core_share"], 2, 1.0),
                ("p50 ms", lambda r: r["latency_us"]["p50"], 2, 1e-3),
                ("p99 ms", lambda r: r["latency_us"]["p99"], 2, 1e-3),
                ("typing starts sent", lambda r: (r.get("typing") or {}).get("sent"), 0, 1.0),
                ("typing frames expected", lambda r: (r.get("typing") or {}).get("expected"), 0,
                 1.0),
                ("typing frames received", lambda r: (r.get("typing") or {}).get(
                    "received_start"), 0, 1.0)]
        rows = [("legacy clients, no typing", "fanout", "tertulia"),
                ("v1 clients, no typing", "fanout_v1", "tertulia"),
                (f"v1 clients, {TYPING_SHARE:.0%} typing", "fanout_typing", "tertulia")]
        if self.all_of("fanout_v1", "tertulia-prev"):
            rows += [("previous commit: v1, no typing", "fanout_v1", "tertulia-prev"),
                     (f"previous commit: v1, {TYPING_SHARE:.0%} typing", "fanout_typing",
                      "tertulia-prev")]
        self.pair_rows([r for r in rows if self.all_of(r[1], r[2])], L, tput)
        dps = lambda r: r["delivered_per_s"]
        dpc = lambda r: r["delivered_per_server_cpu_s"]
        p99 = lambda r: r["latency_us"]["p99"]
        for who, srv in (("this commit", "tertulia"), ("the previous commit", "tertulia-prev")):
            a, b = ("fanout_typing", srv), ("fanout_v1", srv)
            r1, r2, r3 = (self.pair_ratio(a, b, f) for f in (dps, dpc, p99))
            if r1 is None and r2 is None:
                continue
            show = lambda v: "—" if v is None else f"{v:.3f}×"
            L.append(f"- {who}: with typing ÷ without, delivered msgs/s {show(r1)}, delivered "
                     f"per server CPU-second {show(r2)}, p99 {show(r3)}.")
        for sc, what in (("fanout_v1", "without typing"), ("fanout_typing", "with typing")):
            r = self.pair_ratio((sc, "tertulia"), (sc, "tertulia-prev"), dpc)
            if r is not None:
                L.append(f"- {what}: this commit ÷ the previous, delivered per server "
                         f"CPU-second {r:.3f}×.")
        L.append("")

    def massclose_section(self, L):
        runs = [r for r in self.runs if r["scenario"] == "massclose"]
        if not runs:
            return
        L.append("## Mass disconnect (tertulia)")
        L.append("")
        L.append("N `tertulia.v1` clients logged in to one room, so every departure is a "
                 "`member_left` for everyone still there, then all dropped at once (TCP reset); "
                 "the server's CPU (every thread) from the drop until a probe sees the room "
                 "empty, per connection closed, median of the runs (`bench/massclose.mjs`). A "
                 "cost per close that grows with N is a close path that is superlinear.")
        L.append("")
        res = runs[-1].get("result")
        if not res:
            L.append(f"The run failed (exit {runs[-1].get('exit')}): "
                     f"`{(runs[-1].get('stderr') or '').strip()[-300:]}`")
            L.append("")
            return
        rows = res["rows"]
        for rr in self.meta.get("reruns", []):
            if rr["scenario"] == "massclose":
                L.append(f"These runs were made again on {rr['at']} with `{rr['cmdline']}`, on "
                         "the same machine and builds.")
                L.append("")
        L.append("`" + " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c
                                for c in runs[-1]["cmd"]) + "`")
        L.append("")
        names = list(dict.fromkeys(r["server"] for r in rows))
        sizes = sorted({r["n"] for r in rows})

        def med(name, n):
            v = sorted(r["us_per_close"] for r in rows if r["server"] == name and r["n"] == n)
            return v[len(v) // 2] if v else None

        head = " | ".join(f"{SERVER_TITLES.get(n, n)}: server µs per close" for n in names)
        ratio_head = " | tertulia ÷ previous" if "tertulia-prev" in names else ""
        L.append(f"| members dropped at once | {head}{ratio_head} |")
        L.append("|---" * (1 + len(names) + (1 if ratio_head else 0)) + "|")
        for n in sizes:
            cells = [med(x, n) for x in names]
            line = f"| {n:,} | " + " | ".join(fmt(c, 1) for c in cells)
            if ratio_head and med("tertulia", n) and med("tertulia-prev", n):
                line += f" | {med('tertulia', n) / med('tertulia-prev', n):.2f}×"
            L.append(line + " |")
        L.append("")
        lo, hi = sizes[0], sizes[-1]
        for x in names:
            a, b = med(x, lo), med(x, hi)
            if a and b and hi > lo:
                L.append(f"- {SERVER_TITLES.get(x, x)}: the cost per close grows {b / a:.2f}× "
                         f"from {lo:,} to {hi:,} members (1× is linear in N; "
                         f"{hi / lo:.0f}× would be quadratic).")
        L.append("")

    def tls_pmd_section(self, L):
        present = [p for p in TLS_PMD if self.all_of(p[0], p[2]) or self.all_of(p[1], "tertulia")]
        if not present:
            return
        L.append("## TLS and permessage-deflate")
        L.append("")
        L.append("Issue 10's figures. Each measured configuration alternates, run for run, with "
                 "its plain partner against the same build: the same server, the same generator "
                 "arguments but `--deflate` (offer `" + "permessage-deflate; "
                 "client_no_context_takeover; server_no_context_takeover`, every compressed "
                 "message inflated before the usual byte-for-byte verification) or `--tls` (an "
                 "OpenSSL client, a full handshake per connection: no session kept, none "
                 "resumed). TLS runs use a certificate the harness makes for the run "
                 "(`openssl req -x509 -newkey ec`, P-256, for 127.0.0.1, in a scratch directory "
                 "removed afterwards), which the generator verifies (`--tls-ca`). *Wire bytes* "
                 "are what the generator read from its sockets while the run lasted (ciphertext "
                 "over TLS), *payload bytes* the messages after inflating, both per verified "
                 "delivery.")
        L.append("")
        dp = lambda r: r["delivered_per_server_cpu_s"]
        tput = [("delivered msgs/s", lambda r: r["delivered_per_s"], 0, 1.0),
                ("server core share", lambda r: r["server_core_share"], 2, 1.0),
                ("delivered per server CPU-second", dp, 0, 1.0),
                ("generator core share", lambda r: r["gen_core_share"], 2, 1.0),
                ("generator CPU per delivery, ns", lambda r: r.get("gen_cpu_ns_per_delivery"), 0,
                 1.0),
                ("wire bytes per delivery", lambda r: r.get("wire_bytes_per_delivery"), 1, 1.0),
                ("payload bytes per delivery", lambda r: r.get("payload_bytes_per_delivery"), 1,
                 1.0),
                ("p99 ms", lambda r: r["latency_us"]["p99"], 2, 1e-3)]
        verdicts = []

        def verdict(r, need, what):
            if r is None:
                return f"- {what}: **not measured** (a run failed or was not made)."
            return (f"- {what}: " + ("**holds**" if r >= need else "**does not hold**") +
                    f" ({r:.2f})")

        if self.all_of("fanout_deflate", "tertulia"):
            res = next((r["result"] for r in self.sel("fanout_deflate", "tertulia")), None) or \
                next((r["result"] for r in self.sel("fanout_deflate_off", "tertulia")), {})
            L.append("### Fan-out with permessage-deflate")
            L.append("")
            L.append(f"{res.get('clients', 0):,} clients in {res.get('rooms', 0)} rooms "
                     f"({res.get('clients', 0) // max(res.get('rooms', 1), 1)} members each), "
                     f"closed loop, {res.get('size', 0)}-byte texts of chat-like prose "
                     "(`--text words`: common words, spaces and punctuation from a fixed "
                     "stretch, a different offset per message; the default alphabet pad "
                     "repeats every 26 bytes and would compress to almost nothing). The "
                     "server's frames are over `--deflate-min` (256), so each room message is "
                     "compressed once and that frame sent to all 100 members.")
            L.append("")
            self.pair_rows([("every client negotiates permessage-deflate", "fanout_deflate",
                             "tertulia"),
                            ("no client offers it", "fanout_deflate_off", "tertulia")], L, tput)
            a, b = ("fanout_deflate", "tertulia"), ("fanout_deflate_off", "tertulia")
            ratio = self.pair_ratio(a, b, dp)
            wire = self.pair_ratio(a, b, lambda r: r.get("wire_bytes_per_delivery"))
            pay = self.med(*a, lambda r: r.get("payload_bytes_per_delivery"))
            wd = self.med(*a, lambda r: r.get("wire_bytes_per_delivery"))
            gen = self.pair_ratio(a, b, lambda r: r.get("gen_cpu_ns_per_delivery"))
            if wire is not None:
                L.append(f"Wire bytes per delivery with deflate: {wire:.2f}× those without "
                         f"({(1 - wire) * 100:.0f} % saved); the payloads compress "
                         f"{pay / wd:.2f}× (payload over wire bytes, WebSocket headers "
                         "included)." if pay and wd else "")
            if gen is not None:
                L.append("")
                hits = self.med(*a, lambda r: r.get("inflate_cache_hits", 0) /
                                max(r.get("inflate_cache_hits", 0) + r.get("inflates", 0), 1))
                L.append(f"The generator's CPU per delivery with deflate is {gen:.2f}× that "
                         "without. It inflates with one raw stream per worker (`inflateReset` "
                         "per message: no context takeover), and since the server sends one "
                         "compressed frame to every member, a delivery whose compressed bytes "
                         "equal (`memcmp`) those of one it inflated before takes that "
                         "inflation, which inflate would make again byte for byte; every "
                         "delivery is then verified as usual"
                         + (f" ({hits * 100:.1f} % of compressed deliveries did)" if hits else "")
                         + ". Where the generator's core saturates, deliveries per second are "
                         "its limit and the per-CPU-second column is the fair one.")
            L.append("")
            verdicts.append(verdict(ratio, TARGET_DEFLATE_RATIO,
                                    "Fan-out with deflate, delivered per server CPU-second ≥ "
                                    f"{TARGET_DEFLATE_RATIO}× plain (deflate costs at most 1.3× "
                                    "per delivery)"))
        if self.all_of("tls_fanout", "tertulia-tls"):
            L.append("### Fan-out over TLS")
            L.append("")
            res = next((r["result"] for r in self.sel("tls_fanout", "tertulia-tls")), {})
            L.append(f"The fan-out scenario ({res.get('clients', 0):,} clients, "
                     f"{res.get('rooms', 0)} rooms, {res.get('size', 0)}-byte texts) over "
                     f"TLS ({res.get('tls_version', '?')}, {res.get('tls_cipher', '?')}) and "
                     "plain.")
            L.append("")
            self.pair_rows([("TLS", "tls_fanout", "tertulia-tls"),
                            ("plain", "tls_fanout_plain", "tertulia")], L, tput)
            ratio = self.pair_ratio(("tls_fanout", "tertulia-tls"), ("tls_fanout_plain",
                                                                     "tertulia"), dp)
            verdicts.append(verdict(ratio, TARGET_TLS_RATIO,
                                    f"TLS fan-out, delivered per server CPU-second ≥ "
                                    f"{TARGET_TLS_RATIO}× plain"))
        if self.all_of("tls_idle", "tertulia-tls"):
            L.append("### Idle memory per TLS connection")
            L.append("")
            n = next((r["result"]["clients"] for r in self.runs
                      if r["scenario"] == "tls_idle" and r.get("result")), 0)
            L.append(f"{n:,} logged-in idle connections, each after a full TLS handshake, as "
                     "in the idle scenario: server RSS growth per connection. The generator's "
                     "sockets count against its own open-file limit (20,000 here), not the "
                     "server's.")
            L.append("")
            self.pair_rows([("TLS", "tls_idle", "tertulia-tls"),
                            ("plain", "tls_idle_plain", "tertulia")], L,
                           [("RSS per connection, bytes", lambda r: r["rss_per_conn_bytes"], 0,
                             1.0),
                            ("kernel buffers per connection, bytes",
                             lambda r: r["kernel_tcp_mem_per_conn_bytes"], 0, 1.0),
                            ("setup s (connect, handshake, login)", lambda r: r["setup_s"], 1,
                             1.0)])
            t = self.med("tls_idle", "tertulia-tls", lambda r: r["rss_per_conn_bytes"])
            pl = self.med("tls_idle_plain", "tertulia", lambda r: r["rss_per_conn_bytes"])
            if t is not None and pl is not None:
                L.append(f"TLS adds {t - pl:,.0f} bytes of server RSS per idle connection "
                         f"({t:,.0f} against {pl:,.0f}).")
                L.append("")
        if self.all_of("tls_connect", "tertulia-tls"):
            L.append("### TLS handshakes per second")
            L.append("")
            L.append("The connect scenario over TLS: TCP connect, a full TLS handshake (no "
                     "resumption: the generator keeps no session), the WebSocket handshake and "
                     "a confirmed login per connection, up to 128 at once; per second of wall "
                     "time and per second of server CPU.")
            L.append("")
            self.pair_rows([("TLS", "tls_connect", "tertulia-tls"),
                            ("plain", "tls_connect_plain", "tertulia")], L,
                           [("setups per second", lambda r: r["connects_per_s"], 0, 1.0),
                            ("setups per server CPU-second",
                             lambda r: r.get("connects_per_server_cpu_s"), 0, 1.0),
                            ("server core share", lambda r: r["server_core_share"], 2, 1.0),
                            ("generator core share", lambda r: r["gen_core_share"], 2, 1.0),
                            ("resumed handshakes", lambda r: r.get("tls_resumed"), 0, 1.0),
                            ("p99 ms", lambda r: r["latency_us"]["p99"], 2, 1e-3)])
        if verdicts:
            L.append("### Targets")
            L.append("")
            L.extend(verdicts)
            L.append("")
        cmds = []
        for sc, partner, server, _ in TLS_PMD:
            for name, sv in ((sc, server), (partner, "tertulia")):
                r = next((r for r in self.runs if r["scenario"] == name and r["server"] == sv
                          and r.get("cmd")), None)
                if r:
                    c = " ".join(x.replace(ROOT + "/", "") for x in r["cmd"])
                    c = re.sub(r"--port \d+", "--port PORT", c)
                    c = re.sub(r"--server-pid \d+", "--server-pid PID", c)
                    c = re.sub(r"--tls-ca \S+", "--tls-ca CERT", c)
                    cmds.append(c)
        r = next((r for r in self.runs if r["server"] == "tertulia-tls" and r.get("server_cmd")),
                 None)
        if cmds:
            L.append("The commands (the server as in the method above; over TLS it is started "
                     "as below):")
            L.append("")
            L.append("```")
            if r:
                c = " ".join(x.replace(ROOT + "/", "") for x in r["server_cmd"])
                c = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", c)
                c = re.sub(r"--tls-cert \S+", "--tls-cert CERT", c)
                c = re.sub(r"--tls-key \S+", "--tls-key KEY", c)
                c = re.sub(r"--db \S+", "--db FRESH_DIR/tertulia.db", c)
                L.append(c)
            L.extend(cmds)
            L.append("```")
            L.append("")

    # --- issue 13: a cluster over Redis ----------------------------------------------------

    def cluster_runs(self):
        return [r for r in self.runs if r["scenario"].startswith("cluster")]

    def cluster_section(self, L, cmdline=None):
        """'## Cluster over Redis': the cluster scenarios of this run (run_cluster)."""
        runs = self.cluster_runs()
        if not runs:
            return
        m = self.meta
        L.append("## Cluster over Redis")
        L.append("")
        missing = next((r for r in runs if r["scenario"] == "cluster_missing"), None)
        if missing:
            L.append(f"Not measured in this run: {missing.get('error')}.")
            L.append("")
            return
        if cmdline:
            L.append(f"Generated by `{cmdline}` on {m['date']} ({m['mode']} mode; commit "
                     f"`{m['commit']}`{' with uncommitted changes' if m['dirty'] else ''}; "
                     f"{m['cpu']}, {m['cores']} cores; Redis "
                     f"{m['versions'].get('redis') or '?'}) — do not edit by hand; rerun the "
                     "command to refresh it. Only this section comes from that run.")
            L.append("")
        shares = [r["others_core_share"] for r in runs if r.get("others_core_share") is not None]
        if shares:
            busy = [r for r in runs if (r.get("others_core_share") or 0) > 0.25]
            med = statistics.median(shares)
            if med > 0.25:
                L.append(f"> **Warning:** the machine was busy with other work during these runs "
                         f"(a median {med:.2f} of a core, up to {max(shares):.2f}, besides the "
                         "servers, Redis and the generator). Both cores were shared, so the "
                         "absolute numbers are low and noisy, latencies most of all; the ratios "
                         "and per-CPU-second figures suffer less.")
                L.append("")
            L.append(f"Other processes used a median {med:.2f} and at most {max(shares):.2f} of "
                     "a core during these runs (the machine's user+system time less the nodes', "
                     f"Redis's and the generator's); {len(busy)} of {len(shares)} runs shared the "
                     "machine with more than a quarter of a core of other work"
                     + (": " + ", ".join(f"{r['scenario']} {r['server']} rep {r['rep']} "
                                         f"({r['others_core_share']:.2f})" for r in busy)
                        if 0 < len(busy) <= 12 else "") + ".")
            L.append("")
        L.append(f"Pinning: with 2 cores, everything on the server side shares CPU "
                 f"{m['server_cpu']} — the node or nodes *and* Redis — and the generator has CPU "
                 f"{m['gen_cpu']}. So a two-node run gets no more CPU than a one-node run: it "
                 "shows what splitting the clients costs or saves, not a second core's worth. "
                 "Every run starts a fresh Redis (`--save '' --appendonly no`: no persistence, "
                 "so these numbers hold no disk cost for Redis, whereas the SQLite node commits "
                 "every batch to its file) and fresh nodes (`--redis redis://127.0.0.1:PORT/0 "
                 "--node nK`, each waited for on `/readyz`). With two nodes the generator "
                 "connects each room's members to the nodes in turn (the rooms' senders alternate "
                 "too) and puts the two sides of every private pair on different nodes "
                 "(`loadgen --port A,B`), and verifies every delivery as always: each message "
                 "reaches every member of its room exactly once, in the sender's order, whatever "
                 "node the member is on. The configurations alternate within every repetition.")
        L.append("")
        L.append("CPU is utime+stime over the measured window from `/proc/PID/stat`: the nodes' "
                 "summed (`--server-pid A,B`), Redis's apart (`--aux-pid redis=PID`). *Messages "
                 "per batch* and *batch round trip* come from the nodes' `/metrics`, read before "
                 "and after each run (so they include the set-up's few sync messages): "
                 "`tertulia_messages_accepted_total` ÷ `tertulia_store_commit_seconds_count`, and "
                 "that histogram's mean — a batch is one loop iteration's messages, one SQLite "
                 "transaction or one Redis pipeline of EVALSHA calls (one per message), timed "
                 "from its forming to the store's answer. *Redis's µs per EVALSHA* is Redis's "
                 "own time in the script (`INFO commandstats`).")
        L.append("")

        def cl(fn):
            def f(r):
                try:
                    return fn(r)
                except (KeyError, TypeError, ZeroDivisionError):
                    return None
            return f
        redis_cpu = lambda r: (r.get("aux_cpu_s") or {}).get("redis", 0.0)
        total_cpu = lambda r: r["server_cpu_s"] + redis_cpu(r)
        ctr = lambda r: r["_counters"]
        batch = lambda r: (ctr(r)["accepted_room"] + ctr(r)["accepted_private"]) / ctr(r)["batches"]
        cols = [
            ("delivered msgs/s", cl(lambda r: r["delivered_per_s"]), 0, 1.0),
            ("nodes' core share", cl(lambda r: r["server_core_share"]), 2, 1.0),
            ("Redis core share", cl(lambda r: redis_cpu(r) / r["cpu_window_s"]), 2, 1.0),
            ("delivered per node CPU-second", cl(lambda r: r["delivered_per_server_cpu_s"]), 0,
             1.0),
            ("delivered per (nodes + Redis) CPU-second",
             cl(lambda r: r["delivered"] / total_cpu(r)), 0, 1.0),
            ("p50 ms", cl(lambda r: r["latency_us"]["p50"]), 2, 1e-3),
            ("p99 ms", cl(lambda r: r["latency_us"]["p99"]), 2, 1e-3),
            ("messages per batch", cl(batch), 1, 1.0),
            ("batch round trip ms", cl(lambda r: ctr(r)["batch_s"] / ctr(r)["batches"]), 2, 1e3),
        ]
        rows = lambda sc: [(SERVER_TITLES["tertulia"] if c == "tertulia" else SERVER_TITLES[c],
                            sc, c) for c in CLUSTER_CONFIGS if self.all_of(sc, c)]
        for sc, title in (("cluster_fanout", "Fan-out"), ("cluster_private", "Private messages")):
            if not rows(sc):
                continue
            r0 = next((r["result"] for r in runs if r["scenario"] == sc and r.get("result")), {})
            shape = (f"{r0.get('clients', 0):,} clients in {r0.get('rooms')} rooms, one sender per "
                     f"room, window {r0.get('window')}" if sc == "cluster_fanout" else
                     f"{r0.get('pairs', 0):,} pairs, window {r0.get('window')} per client")
            L.append(f"### {title}")
            L.append("")
            L.append(f"{shape}, {r0.get('size')}-byte texts; {m['reps']} runs per configuration."
                     + (" On the SQLite node a guest's private message is live only: it is "
                        "written nowhere, so it has no batch (—) and no store round trip, "
                        "while in a cluster every private is an EVALSHA (the recipient's channel, "
                        "and the sender's for its other connections)."
                        if sc == "cluster_private" else ""))
            L.append("")
            self.pair_rows(rows(sc), L, cols)
        L.append("### The target")
        L.append("")
        per_total = cl(lambda r: r["delivered"] / total_cpu(r))
        per_node = cl(lambda r: r["delivered_per_server_cpu_s"])
        sq = self.med("cluster_fanout", "tertulia", per_node)
        rd = self.med("cluster_fanout", "tertulia-redis", per_total)
        rd_node = self.med("cluster_fanout", "tertulia-redis", per_node)
        rd2 = self.med("cluster_fanout", "tertulia-redis2", per_total)
        if sq and rd:
            ratio = rd / sq
            word = "**holds**" if ratio >= TARGET_REDIS_RATIO else "**does not hold**"
            L.append(f"- One node on Redis keeps at least {TARGET_REDIS_RATIO:.0%} of the SQLite "
                     f"node's fan-out per server CPU-second: {word} — {ratio:.2f}× "
                     f"({fmt(rd)} deliveries per CPU-second of node + Redis, against {fmt(sq)} "
                     "per CPU-second of the SQLite node; medians). Redis's CPU counts as server "
                     "CPU here: it is work the cluster does for every message.")
            if rd_node:
                L.append(f"- Counting the node's CPU alone, one node on Redis does "
                         f"{rd_node / sq:.2f}× the SQLite node's deliveries per CPU-second (no "
                         "SQLite writes; its share of the publish is Redis's).")
            if rd2:
                L.append(f"- Two nodes on Redis, node + Redis CPU: {rd2 / sq:.2f}× the SQLite "
                         "node's (both nodes deliver every message to their half of each room, "
                         "and both read it from their subscription).")
        else:
            L.append("- One node on Redis against the SQLite node's fan-out per server "
                     "CPU-second: **not measured** (a run failed or was not made; see above).")
        L.append("")

        loads = sorted({tuple(map(int, CLUSTER_LOAD.match(r["scenario"]).groups()))
                        for r in runs if CLUSTER_LOAD.match(r["scenario"])},
                       key=lambda sw: (sw[0] * sw[1], sw[0]))
        if loads:
            L.append("### A store round trip per loop iteration, and how it amortizes")
            L.append("")
            r0 = next((r["result"] for r in runs if CLUSTER_LOAD.match(r["scenario"])
                       and r.get("result")), {})
            members = r0.get("clients", 0) // max(r0.get("rooms") or 1, 1)
            L.append(f"The fan-out above ({members} members per room, one sender each) at "
                     "several offered loads: senders × window messages in flight ("
                     + ", ".join(f"{a} × {b}" for a, b in loads) + "). The node sends each loop "
                     "iteration's messages to its store together — one SQLite transaction, or "
                     "one Redis pipeline with an EVALSHA per message — and delivers a room "
                     "message only when the store has it (with Redis, when it comes back on the "
                     "subscription). With one message in flight a batch holds that one message "
                     "and its round trip is paid per message; as the load grows, batches grow and "
                     "the round trip's cost per message falls. *CPU µs per message* divides the "
                     "CPU by the messages sent (each fans out to the room's members). Redis "
                     "shares CPU 0 with the node, so a Redis batch's round trip also holds the "
                     "time each waits for the other's turn on that core; Redis on a core of its "
                     "own would shorten it, not change the CPU per message.")
            L.append("")
            sent_rate = cl(lambda r: r["sent"] / r["elapsed_s"])
            wcols = [
                ("messages sent/s", sent_rate, 0, 1.0),
                ("messages per batch", cl(batch), 1, 1.0),
                ("batch round trip ms", cl(lambda r: ctr(r)["batch_s"] / ctr(r)["batches"]), 3,
                 1e3),
                ("node CPU µs per message", cl(lambda r: r["server_cpu_s"] / r["sent"]), 1, 1e6),
                ("Redis CPU µs per message", cl(lambda r: redis_cpu(r) / r["sent"]), 1, 1e6),
                ("Redis's µs per EVALSHA", cl(lambda r: ctr(r)["evalsha_usec"] /
                                              ctr(r)["evalsha_calls"]), 1, 1.0),
                ("delivered per (node + Redis) CPU-second", per_total, 0, 1.0),
                ("p50 ms", cl(lambda r: r["latency_us"]["p50"]), 2, 1e-3),
                ("p99 ms", cl(lambda r: r["latency_us"]["p99"]), 2, 1e-3),
            ]
            wrows = []
            label = lambda sw: f"{sw[0]} sender{'s' if sw[0] > 1 else ''} × window {sw[1]}"
            for sw in loads:
                for c in ("tertulia", "tertulia-redis"):
                    if self.all_of(f"cluster_s{sw[0]}w{sw[1]}", c):
                        name = "SQLite" if c == "tertulia" else "Redis"
                        wrows.append((f"{label(sw)}, {name}", f"cluster_s{sw[0]}w{sw[1]}", c))
            self.pair_rows(wrows, L, wcols)
            p50 = cl(lambda r: r["latency_us"]["p50"])
            for sw in loads:
                sc = f"cluster_s{sw[0]}w{sw[1]}"
                a, b = self.med(sc, "tertulia-redis", p50), self.med(sc, "tertulia", p50)
                x, y = self.med(sc, "tertulia-redis", per_total), self.med(sc, "tertulia", per_node)
                nb = self.med(sc, "tertulia-redis", cl(batch))
                if a is None or b is None:
                    continue
                L.append(f"- {label(sw)}: Redis adds {(a - b) / 1000:+.2f} ms to the median latency "
                         f"({a / 1000:.2f} against {b / 1000:.2f} ms)"
                         + (f"; {nb:.1f} messages per pipeline" if nb else "")
                         + (f"; per server CPU-second {x / y:.2f}× SQLite's" if x and y else "")
                         + ".")
            L.append("")
        cmds = []
        seen = set()
        started = [c for r in runs for c in ([r.get("redis_cmd")] if r.get("redis_cmd") else [])
                   + (r.get("node_cmds") or [r.get("server_cmd")])]
        for c in started + [r.get("cmd") for r in runs]:
            if not c:
                continue
            t = " ".join(x.replace(ROOT + "/", "") for x in c)
            t = re.sub(r"--port (\d+) --bind", "--port REDIS_PORT --bind", t)
            t = re.sub(r"127\.0\.0\.1:\d+/0", "127.0.0.1:REDIS_PORT/0", t)
            t = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", t)
            t = re.sub(r"--(port|server-pid) ([\d,]+)", placeholders, t)
            t = re.sub(r"redis=\d+", "redis=REDIS_PID", t)
            t = re.sub(r"--(dir|db) \S+", lambda mm: f"--{mm.group(1)} FRESH_DIR" +
                       ("/tertulia.db" if mm.group(1) == "db" else ""), t)
            t = t.replace("--save  ", "--save '' ")
            if t not in seen:
                seen.add(t)
                cmds.append(t)
        L.append("The processes, as started: the servers (a fresh Redis first in a cluster run, "
                 "then its nodes), then the generator per run (ports, PIDs and scratch "
                 "directories filled in per run):")
        L.append("")
        L.append("```")
        L.extend(cmds)
        L.append("```")
        L.append("")

    def scenario_caption(self, scenario):
        r = next((r["result"] for r in self.runs if r["scenario"] == scenario and r.get("result")),
                 None)
        if not r:
            return "Not run."
        if scenario == "fanout":
            return (f"{r['clients']:,} clients in {r['rooms']} rooms, one sender per room, closed "
                    f"loop with {r['window']} of its own messages in flight (one completes when "
                    f"the sender's own copy returns), {r['size']}-byte texts; "
                    f"{self.meta['reps']} runs per server.")
        if scenario == "private":
            return (f"{r['clients']:,} clients in {r['pairs']:,} pairs exchanging private messages, "
                    f"closed loop with {r['window']} in flight per client (each message goes to "
                    f"the addressee and back to the sender), {r['size']}-byte texts; "
                    f"{self.meta['reps']} runs per server.")
        if scenario == "connect":
            return (f"{r['clients']:,} connections, up to 128 setting up at once, each counted when "
                    "the TCP connect, the WebSocket handshake and the login are done (the login "
                    "is confirmed by a message to the connection's own room coming back); "
                    f"{self.meta['reps']} runs per server.")
        return ""

    def chart15(self, svg_path):
        """Issue 15's chart: the big room's p99 at each fixed rate, and fan-out server CPU per
        delivery split into user, kernel and softirq, for tertulia, its previous commit and
        uWebSockets."""
        who = [s for s in ("tertulia", "tertulia-prev", "uws") if self.sel("bigroom_rate", s)]
        if not shutil.which("gnuplot") or "tertulia" not in who:
            return False
        heads = {"tertulia": "tertulia", "tertulia-prev": "previous commit",
                 "uws": "uWebSockets"}
        d1, d2 = svg_path + ".1.dat", svg_path + ".2.dat"
        with open(d1, "w") as f:
            for rate in BIGROOM_RATES:
                vals = []
                for s in who:
                    v = [r["result"]["latency_us"]["p99"] / 1000 for r in self.sel(
                        "bigroom_rate", s) if r.get("rate") == rate]
                    vals.append(f"{statistics.median(v):.2f}" if v else "NaN")
                f.write(f"{rate} " + " ".join(vals) + "\n")

        def nd(s, key):
            v = self.med("fanout", s, lambda r: 1e9 * r[key] / r["delivered"]
                         if r.get(key, -1) >= 0 and r.get("delivered") else None)
            return v
        with open(d2, "w") as f:
            for s in who:
                u, k, q = nd(s, "server_utime_s"), nd(s, "server_stime_s"), \
                    nd(s, "server_cpu_softirq_s")
                if None in (u, k):
                    continue
                q = q or 0.0
                f.write(f'"{heads[s]}" {u:.1f} {max(k - q, 0):.1f} {q:.1f}\n')
        plot1 = ", \\\n     ".join(
            f'"{d1}" using 1:{i + 2} with linespoints lw 2 pt 7 title "{heads[s]}"'
            for i, s in enumerate(who))
        gp = f"""
set terminal svg size 1200,450 dynamic font "DejaVu Sans,11" background rgb "white"
set output "{svg_path}"
set multiplot layout 1,2 title "issue 15 — {self.meta['date'][:10]} (medians)"
set grid
set key top left
set title "Big room, 5,000 members: p99 by rate (lower is better)"
set xlabel "messages/s (× 5,000 deliveries)"
set ylabel "p99 ms"
set xtics ({", ".join(str(r) for r in BIGROOM_RATES)})
set arrow from 90,25 to 410,25 nohead dt 2 lc rgb "#888888"
set arrow from 90,40 to 410,40 nohead dt 3 lc rgb "#888888"
plot {plot1}
unset arrow
unset xlabel
set xtics auto
set style data histograms
set style histogram rowstacked
set style fill solid 0.85 border -1
set boxwidth 0.6
set key top right
set title "Fan-out: server CPU per delivery (lower is better; target 350 ns)"
set ylabel "ns"
set yrange [0:*]
plot "{d2}" using 2:xtic(1) title "user" lc rgb "#1f77b4", \\
     "" using 3 title "kernel (less softirq)" lc rgb "#ff7f0e", \\
     "" using 4 title "softirq (the generator's sockets receiving)" lc rgb "#2ca02c"
unset multiplot
"""
        p = subprocess.run(["gnuplot"], input=gp, text=True, capture_output=True, timeout=60)
        for d in (d1, d2):
            os.unlink(d)
        if p.returncode != 0:
            log("gnuplot failed (issue 15 chart): " + p.stderr[-500:])
            return False
        return True

    def chart(self, svg_path):
        if not shutil.which("gnuplot"):
            return False
        dat = svg_path + ".dat"
        rows = []
        for s in self.servers:
            def g(sc, fn, codes=(0,)):
                v = self.med(sc, s, fn, codes)
                return "NaN" if v is None else f"{v:.3f}"
            rows.append(" ".join([
                f'"{SERVER_TITLES[s]}"',
                g("fanout", lambda r: r["delivered_per_s"]),
                g("private", lambda r: r["delivered_per_s"]),
                g("fanout", lambda r: r["latency_us"]["p99"] / 1000),
                g("private", lambda r: r["latency_us"]["p99"] / 1000),
                g("bigroom", lambda r: r["latency_us"]["p99"] / 1000, (0, 2)),
                g("fanout", lambda r: r["delivered_per_server_cpu_s"]),
            ]))
        with open(dat, "w") as f:
            f.write("# server fanout_dps private_dps fanout_p99 private_p99 bigroom_p99 "
                    "fanout_per_cpu\n")
            f.write("\n".join(rows) + "\n")
        rate = next((r.get("rate") for r in self.runs if r["scenario"] == "bigroom"), "?")
        gp = f"""
set terminal svg size 1200,500 dynamic font "DejaVu Sans,11" background rgb "white"
set output "{svg_path}"
set multiplot layout 1,2 title "tertulia and its peers — {self.meta['date'][:10]}, {self.meta['mode']} run (medians)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set grid ytics
set key below horizontal
set xtics nomirror rotate by -15 scale 0
set title "Delivered messages per second (log scale; higher is better)"
set ylabel "msgs/s"
set format y "%.0s%c"
plot "{dat}" using 2:xtic(1) title "fan-out" lc rgb "#1f77b4", \\
     "" using 3 title "private" lc rgb "#2ca02c", \\
     "" using 7 title "fan-out per server CPU-second" lc rgb "#9467bd"
set title "p99 latency (log scale; lower is better)"
set ylabel "ms"
set format y "%g"
plot "{dat}" using 4:xtic(1) title "fan-out" lc rgb "#1f77b4", \\
     "" using 5 title "private" lc rgb "#2ca02c", \\
     "" using 6 title "big room at {rate} msgs/s" lc rgb "#d62728"
unset multiplot
"""
        p = subprocess.run(["gnuplot"], input=gp, text=True, capture_output=True, timeout=60)
        if p.returncode != 0:
            log("gnuplot failed: " + p.stderr[-500:])
            return False
        os.unlink(dat)
        return True


def keep_hand_sections(path, L):
    """The report's sections (## level) that the generator does not write are written by hand,
    each with the command that made its numbers: they are kept, each after the section it
    followed (or the one before that, ...), so that a full run does not erase them."""
    if not os.path.exists(path):
        return L
    old = open(path).read().split("\n")
    secs, cur = [], None
    for line in old:
        if line.startswith("## "):
            cur = [line]
            secs.append(cur)
        elif cur is not None:
            cur.append(line)
    new = list(L)

    def end_of(heading):
        i = next((k for k, l in enumerate(new) if l.strip() == heading), None)
        if i is None:
            return None
        return next((k for k in range(i + 1, len(new)) if new[k].startswith("## ")), len(new))
    heads = {l.strip() for l in new if l.startswith("## ")}
    at = next((k for k, l in enumerate(new) if l.startswith("## ")), len(new))
    for sec in secs:
        h = sec[0].strip()
        if h in heads:
            e = end_of(h)
            at = e if e is not None else at
            continue
        body = list(sec)
        while body and not body[-1].strip():
            body.pop()
        new[at:at] = body + [""]
        at += len(body) + 1
    return new


def splice_section(path, heading, lines):
    """Writes lines (a section starting with heading) into the Markdown file at path: in place
    of the section of that heading (up to the next heading of the same level), or at the end;
    a missing file gets just the section."""
    old = open(path).read().split("\n") if os.path.exists(path) else []
    level = heading.split(" ")[0] + " "
    start = next((i for i, l in enumerate(old) if l.strip() == heading), None)
    if start is None:
        while old and not old[-1].strip():
            old.pop()
        new = old + ([""] if old else []) + lines
    else:
        end = next((i for i in range(start + 1, len(old)) if old[i].startswith(level)), len(old))
        new = old[:start] + lines + old[end:]
    with open(path, "w") as f:
        f.write("\n".join(new).rstrip("\n") + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=["full", "quick"], default="full")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--tertulia", help="the tertulia binary (default BUILD_DIR/tertulia)")
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--uws-peer", default=os.environ.get("UWS_PEER") or os.path.join(
                    os.environ.get("UWS_BUILD_DIR") or "/tmp/tertulia-uws", "uws_peer"),
                    help="the uWebSockets peer's binary (bench/peers/build_uws.sh builds it; "
                    "default $UWS_PEER, else $UWS_BUILD_DIR or /tmp/tertulia-uws, /uws_peer)")
    ap.add_argument("--tertulia-prev", help="the previous commit's tertulia binary: fan-out, "
                    "private and idle also run it, in the same run, for the comparison")
    ap.add_argument("--skip", default="", help="comma list: fanout,private,bigroom,idle,connect,"
                    "churn,massclose,deflate (= deflate_fanout),tls (= tls_fanout,tls_idle,"
                    "tls_connect),typing (= fanout_typing: the v1 fan-out with and without "
                    "typing),mem (the fan-out with --db :memory:),cluster (= cluster_fanout,"
                    "cluster_private,cluster_load: issue 13's Redis scenarios),bigroom_rates (issue 15's "
                    "big room at 100, 200 and 400 msgs/s),callgrind (instructions per delivery)")
    ap.add_argument("--results", help="directory for runs.jsonl and logs")
    ap.add_argument("--doc", help="the Markdown report to write")
    ap.add_argument("--svg", help="the chart to write")
    ap.add_argument("--reps", type=int, default=None,
                    help="repetitions per server and scenario (default: 3 full, 1 quick)")
    ap.add_argument("--budget-min", type=float, default=None, help="stop starting runs after this")
    ap.add_argument("--quiet-wait", type=float, default=None,
                    help="before each run, wait up to this long for other processes to go quiet")
    ap.add_argument("--autogroup-nice", type=int, default=None,
                    help="set this session's scheduler autogroup nice (e.g. -10, needs root) so "
                         "other sessions' work disturbs the runs less; off by default, since it "
                         "takes the CPU from everyone else on the machine")
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--gen-cpu", default="1")
    ap.add_argument("--profile", action="store_true", help="perf-profile tertulia in one fan-out run")
    ap.add_argument("--report-only", action="store_true", help="rewrite the report from --results")
    ap.add_argument("--cmdline", default="bench/run.sh")
    ap.add_argument("--massclose-bin", action="append", default=[], metavar="NAME=PATH",
                    help="another tertulia binary for the mass-disconnect runs (e.g. an older "
                         "commit's), measured beside this one and the previous commit")
    ap.add_argument("--only", choices=["cluster"],
                    help="run only these scenarios (cluster: issue 13's, against one SQLite node, "
                         "one Redis node and two Redis nodes) and write only their section into "
                         "--doc, replacing it there (the rest of the file stays as it is)")
    ap.add_argument("--rerun", metavar="SCENARIO",
                    help="with --results of an earlier run: run only this scenario again "
                         "(massclose), replacing its records, and rewrite the report")
    args = ap.parse_args()
    args.servers = [s for s in args.servers.split(",") if s]
    if "uws" in args.servers and not args.report_only and not os.access(args.uws_peer, os.X_OK):
        log(f"no uWebSockets build at {args.uws_peer}: the uWS peer is left out "
            "(bench/peers/build_uws.sh builds one)")
        args.servers.remove("uws")
    args.skip = set(s for s in args.skip.split(",") if s)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if not args.results:
        args.results = os.path.join(ROOT, "bench", "results", f"{stamp}-{args.mode}")
    if args.budget_min is None:
        # Full: about 30 minutes with the cluster scenarios (issue 13), which come last.
        args.budget_min = 40 if args.mode == "full" else 8
    if args.quiet_wait is None:
        args.quiet_wait = 15 if args.mode == "full" else 3
    if not args.doc:
        args.doc = (os.path.join(ROOT, "docs", "BENCHMARKS.md") if args.mode == "full"
                    else os.path.join(args.results, "BENCHMARKS.md"))
    if not args.svg:
        args.svg = os.path.join(os.path.dirname(args.doc), "bench.svg")
    os.makedirs(args.results, exist_ok=True)
    meta_path = os.path.join(args.results, "meta.json")
    runs_path = os.path.join(args.results, "runs.jsonl")

    if args.autogroup_nice is not None and not args.report_only:
        try:
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(args.autogroup_nice))
        except OSError as e:
            log(f"cannot set the autogroup nice: {e}")
    if args.rerun:
        if args.rerun != "massclose" or not os.path.exists(runs_path):
            log("--rerun takes massclose and the --results of an earlier run")
            return 2
        with open(meta_path) as f:
            meta = json.load(f)
        kept = [r for r in load_runs(runs_path) if r["scenario"] != args.rerun]
        with open(runs_path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        args.mode = meta.get("mode", args.mode)
        b = Bench(args)
        b.massclose()
        meta.setdefault("reruns", []).append(
            {"scenario": args.rerun, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
             "cmdline": shlex.join(["bench/run.py", *sys.argv[1:]])})
        with open(meta_path, "w") as f:
            json.dump(meta, f, indent=1)
        args.report_only = True
    if not args.report_only:
        meta = machine_info(args)
        meta["autogroup"] = open("/proc/self/autogroup").read().strip() \
            if os.path.exists("/proc/self/autogroup") else ""
        meta["reps"] = args.reps or PLANS[args.mode]["reps"]
        meta["only"] = args.only
        meta["runs_path"] = runs_path
        with open(meta_path, "w") as f:
            json.dump(meta, f, indent=1)
        log(f"{args.mode} run; results in {args.results}; load average "
            f"{' '.join(meta['loadavg_start'])}")
        t0 = time.monotonic()
        if args.only == "cluster":
            Bench(args).run_cluster()
        else:
            Bench(args).run_all()
        meta["elapsed_s"] = round(time.monotonic() - t0)
        with open(meta_path, "w") as f:
            json.dump(meta, f, indent=1)
    with open(meta_path) as f:
        meta = json.load(f)
    meta["runs_path"] = runs_path
    runs = load_runs(runs_path)
    rep = Report(runs, meta)
    os.makedirs(os.path.dirname(args.doc), exist_ok=True)
    if args.only == "cluster" or meta.get("only") == "cluster":
        L = []
        rep.cluster_section(L, args.cmdline)
        splice_section(args.doc, "## Cluster over Redis", L)
        log(f"wrote the cluster section into {os.path.relpath(args.doc, ROOT)}")
        failed = [r for r in runs if r.get("exit") in (1, 3, -1)]
        if failed:
            log(f"{len(failed)} runs failed; see the report")
        return 1 if failed else 0
    svg_ok = rep.chart(args.svg)
    svg15 = os.path.join(os.path.dirname(args.svg), "bench-issue15.svg")
    if rep.chart15(svg15):
        rep.meta["chart15"] = os.path.relpath(svg15, os.path.dirname(args.doc))
    rep.write(args.doc, os.path.relpath(args.svg, os.path.dirname(args.doc)), args.cmdline)
    log(f"wrote {os.path.relpath(args.doc, ROOT)}" + (f" and {os.path.relpath(args.svg, ROOT)}"
                                                       if svg_ok else " (no chart: gnuplot failed)"))
    failed = [r for r in runs if r.get("exit") in (1, 3, -1) and r["scenario"] != "sweep"]
    if failed:
        log(f"{len(failed)} runs failed; see the report")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
