#!/usr/bin/env python3
"""The drain experiment: database connections while nginx moves from blue to green.

  python3 benches/drain.py [--backends 10] [--pool 4] [--wait-timeout 3] [--batches 10]
                           [--roll PATH] [--demo PATH] [--json FILE]

A private MariaDB (Debian `mariadb-server`) with a short `wait_timeout`; every backend runs the
demo app twice (blue and green), each holding a pool of `--pool` connections from its first
request on; nginx (private prefix, loopback) proxies to them; a load client keeps requests
flowing through nginx. Threads_connected is sampled every 100 ms.

1. Steady state: all traffic on blue, every blue pool open.
2. roll switches to green in `--batches` batches with a pause of wait_timeout + 1 s, so each
   batch's old pools time out before the next batch opens new ones (the sleep schedule).
3. roll switches back to blue in one batch: every blue pool reopens while every green pool still
   waits for its timeout.
4. roll switches to green again in `--batches` batches with retirement and no pause: once a
   batch is live, the old colour's processes of its backends are stopped over each backend
   host's connection (here `ansible_connection=local`), so their pools close at once.

Prints the steady state and the peaks, and on its own line
`retirement: peak P = R x steady, switch S s = Q x the sleep schedule`; --json writes them.
Exits 1 if the batched or the retirement peak is above 1.1 x steady + 2, or any request
failed. Everything listens on 127.0.0.1 and stops at the end.
"""
import argparse, http.client, json, os, shutil, subprocess, sys, tempfile, threading, time
from benchlib import UPSTREAM_J2, free_port, start_backends, start_nginx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def need(path, package):
    if not shutil.which(path) and not os.path.exists(path):
        sys.exit(f"error: `{path}` not found: install the Debian package `{package}`")

class Maria:
    def __init__(self, d, wait_timeout):
        need("/usr/sbin/mariadbd", "mariadb-server")
        data = os.path.join(d, "data")
        subprocess.run(["mariadb-install-db", "--no-defaults", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db",
                        f"--datadir={data}"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        self.port, self.sock = free_port(), os.path.join(d, "sock")
        self.proc = subprocess.Popen(
            ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={data}", f"--socket={self.sock}",
             f"--port={self.port}", "--bind-address=127.0.0.1", "--user=root",
             f"--wait-timeout={wait_timeout}", "--max-connections=2000", "--skip-log-bin"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "mariadb.log"), "w"))
        t0 = time.time()
        while self.sql("SELECT 1") is None:
            if time.time() - t0 > 30:
                sys.exit(f"error: mariadbd did not start; see {d}/mariadb.log")
            time.sleep(0.1)
        self.sql("DELETE FROM mysql.global_priv WHERE User=''; FLUSH PRIVILEGES; "
                 "CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw'; GRANT ALL ON *.* TO 'app'@'%';")
        self.version = self.sql("SELECT VERSION()")

    def sql(self, q):
        r = subprocess.run(["mariadb", "--no-defaults", "-N", "-B", "-u", "root", "-S", self.sock,
                            "-e", q], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None

    def threads_connected(self):
        out = self.sql("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
        return int(out.split()[-1]) if out else None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)

class Sampler(threading.Thread):
    """Threads_connected every 100 ms (the sampler's own connection included, always one)."""
    def __init__(self, db):
        super().__init__(daemon=True)
        self.db, self.samples, self.stop = db, [], threading.Event()
    def run(self):
        while not self.stop.is_set():
            n = self.db.threads_connected()
            if n is not None:
                self.samples.append((time.monotonic(), n))
            time.sleep(0.1)
    def between(self, a, b):
        return [n for t, n in self.samples if a <= t <= b]

class Load(threading.Thread):
    """Requests through nginx, a new connection each; failures counted."""
    def __init__(self, port, workers=4):
        super().__init__(daemon=True)
        self.port, self.workers, self.stop = port, workers, threading.Event()
        self.ok = self.failed = 0
        self.lock = threading.Lock()
    def one(self):
        while not self.stop.is_set():
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/")
                r = c.getresponse()
                r.read()
                c.close()
                good = 200 <= r.status < 300
            except OSError:
                good = False
            with self.lock:
                if good:
                    self.ok += 1
                else:
                    self.failed += 1
            time.sleep(0.002)
    def run(self):
        ts = [threading.Thread(target=self.one, daemon=True) for _ in range(self.workers)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

PLAYBOOK = """
- hosts: proxy1
  tasks:
    - roll.nginx_switch:
        app: web
        to: "{{ to }}"
        backends: "{{ backend_list }}"
        template: upstream.j2
        dest: "{{ d }}/nginx/web-upstream.conf"
        batches: "{{ batches }}"
        pause: "{{ pause }}"
        validate: "nginx -t -p {{ d }}/nginx -c nginx.conf"
        reload: "nginx -s reload -p {{ d }}/nginx -c nginx.conf"
        pid_file: "{{ d }}/nginx/nginx.pid"
        state_dir: "{{ d }}/state"
        # Run on each backend host: stop its old colour's process and wait until it is gone.
        retire:
          enabled: "{{ retire }}"
          # (until it is gone or a zombie: the bench, its parent, reaps it at the end)
          command: "p={{ pids[backend][old_colour] }}; kill $p; while ps -o stat= -p $p | grep -qv Z; do sleep 0.02; done"
"""

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", type=int, default=10)
    ap.add_argument("--pool", type=int, default=4)
    ap.add_argument("--wait-timeout", type=int, default=3)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--roll", help="the roll binary (default: build target/release/roll)")
    ap.add_argument("--demo", help="the demo app binary (default: build target/release/roll-demo)")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    need("nginx", "nginx")
    if not (a.roll and a.demo):
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "roll", "-p", "roll-demo"],
                       cwd=ROOT, check=True)
    roll = a.roll or os.path.join(ROOT, "target/release/roll")
    demo = a.demo or os.path.join(ROOT, "target/release/roll-demo")
    d = tempfile.mkdtemp(prefix="roll-drain-")
    procs, nginx_started, db = [], False, None
    try:
        db = Maria(d, a.wait_timeout)
        backends = start_backends(demo, a.backends, procs, {
            "DB_ADDR": f"127.0.0.1:{db.port}", "DB_USER": "app", "DB_PASSWORD": "app-pw", "DB_POOL": str(a.pool)})
        ng = os.path.join(d, "nginx")
        proxy = start_nginx(ng, backends)
        nginx_started = True
        with open(os.path.join(d, "upstream.j2"), "w") as f:
            f.write(UPSTREAM_J2)
        with open(os.path.join(d, "pb.yml"), "w") as f:
            f.write(PLAYBOOK)
        # The backends are inventory hosts too, so that retirement reaches each over its own
        # connection (all on this machine).
        with open(os.path.join(d, "hosts"), "w") as f:
            f.write("proxy1 ansible_connection=local\n"
                    + "".join(f"{b['name']} ansible_connection=local\n" for b in backends))
        # Each backend's blue and green process ids, for the retire command.
        pids = {b["name"]: {"blue": procs[2 * i].pid, "green": procs[2 * i + 1].pid}
                for i, b in enumerate(backends)}

        sampler, load = Sampler(db), Load(proxy)
        sampler.start()
        load.start()
        full = a.backends * a.pool + 1
        # Steady state: every blue pool open and holding for longer than wait_timeout.
        t0 = time.monotonic()
        while True:
            time.sleep(0.5)
            recent = sampler.between(time.monotonic() - a.wait_timeout - 1, time.monotonic())
            if len(recent) > 5 and min(recent) >= full and time.monotonic() - t0 > a.wait_timeout + 1:
                break
            if time.monotonic() - t0 > 60:
                sys.exit(f"error: no steady state: the blue pools never held {full} connections")
        steady_window = sampler.between(time.monotonic() - 2, time.monotonic())
        steady = sorted(steady_window)[len(steady_window) // 2]

        def switch(to, batches, pause, retire=False):
            """The peak over the switch and the settling after it, and how long roll took."""
            extra = json.dumps({"backend_list": backends, "d": d, "to": to, "batches": batches,
                                "pause": pause, "retire": retire, "pids": pids})
            start = time.monotonic()
            r = subprocess.run([roll, "play", "pb.yml", "-i", "hosts", "-e", extra], cwd=d,
                               capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
            took = time.monotonic() - start
            if r.returncode != 0:
                sys.exit(f"error: roll failed:\n{r.stdout}{r.stderr}")
            # The old colour's pools time out wait_timeout after their last request.
            time.sleep(a.wait_timeout + 1.5)
            return max(sampler.between(start, time.monotonic())), took

        pause = a.wait_timeout + 1
        batched, batched_s = switch("green", a.batches, f"{pause}s")
        # Back to steady on green before the all-at-once switch.
        time.sleep(1)
        all_at_once, all_s = switch("blue", 1, "0s")
        time.sleep(1)
        retired, retired_s = switch("green", a.batches, "0s", retire=True)
        load.stop.set()
        sampler.stop.set()
        bound = 1.1 * steady + 2
        figures = {
            "backends": a.backends, "pool": a.pool, "wait_timeout_s": a.wait_timeout,
            "batches": a.batches, "pause_s": pause, "mariadb": db.version,
            "steady": steady, "batched_peak": batched, "batched_bound": round(bound, 1),
            "batched_ratio": round(batched / steady, 3), "all_at_once_peak": all_at_once,
            "all_at_once_ratio": round(all_at_once / steady, 3),
            "requests": load.ok + load.failed, "failed_requests": load.failed,
            "batched_switch_s": round(batched_s, 1), "all_at_once_switch_s": round(all_s, 1),
            "retire_peak": retired, "retire_ratio": round(retired / steady, 3),
            "retire_switch_s": round(retired_s, 2), "retire_time_ratio": round(retired_s / batched_s, 3),
        }
        print(f"drain experiment: {a.backends} backends x pool {a.pool}, MariaDB {db.version}, "
              f"wait_timeout {a.wait_timeout} s; Threads_connected every 100 ms")
        print(f"  steady state (all on blue):              {steady}")
        print(f"  {a.batches} batches, pause {pause} s (>= wait_timeout): peak {batched} = "
              f"{batched / steady:.2f} x steady   (bound 1.1 x steady + 2 = {bound:.1f})")
        print(f"  all at once (1 batch):                    peak {all_at_once} = {all_at_once / steady:.2f} x steady")
        print(f"  {f'{a.batches} batches, retirement, no pause:':<42}peak {retired} = {retired / steady:.2f} x steady")
        print(f"  load through nginx: {load.ok + load.failed} requests, {load.failed} failed")
        print(f"retirement: peak {retired} = {retired / steady:.2f} x steady, switch {retired_s:.1f} s = "
              f"{retired_s / batched_s:.2f} x the sleep schedule")
        if a.json:
            with open(a.json, "w") as f:
                json.dump(figures, f, indent=2)
        return 0 if batched <= bound and retired <= bound and load.failed == 0 else 1
    finally:
        for p in procs:
            p.kill()
        if nginx_started:
            subprocess.run(["nginx", "-p", os.path.join(d, "nginx"), "-c", "nginx.conf", "-s", "stop"],
                           stderr=subprocess.DEVNULL)
        if db:
            db.stop()
        shutil.rmtree(d, ignore_errors=True)

if __name__ == "__main__":
    sys.exit(main())
