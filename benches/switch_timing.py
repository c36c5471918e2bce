#!/usr/bin/env python3
"""How long a batch of roll.nginx_switch takes on the proxy, and how exact its pauses are.

  python3 benches/switch_timing.py [--batches 10] [--pause 1.0] [--backends 6] [--runs 3]

nginx (private prefix, loopback) in front of demo app processes (blue and green per backend).
roll switches blue -> green -> blue ..., `--runs` times, over the local connection and over SSH to a
loopback fleet host (scripts/fleet); the switch reports per batch the time spent writing the
file, validating (`nginx -t`), reloading until the new workers serve and the old ones have
exited, the gate through the proxy, and the measured pause. Baseline, in the same run: the
same validate + reload + wait-for-old-workers done by hand with no roll around it.
Pause target: within 5 % + 100 ms of the configured pause.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time
from benchlib import UPSTREAM_J2, free_port, start_backends, start_nginx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


PLAYBOOK = """
- hosts: proxy
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
        gate: { url: "http://127.0.0.1:{{ proxy_port }}/", status: 200 }
        state_dir: "{{ d }}/state-{{ inventory_hostname }}"
"""

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--pause", type=float, default=1.0)
    ap.add_argument("--backends", type=int, default=6)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    for tool, pkg in (("nginx", "nginx"), ("/usr/sbin/sshd", "openssh-server")):
        if not shutil.which(tool) and not os.path.exists(tool):
            sys.exit(f"error: `{tool}` not found: install the Debian package `{pkg}`")
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "roll", "-p", "roll-demo"], cwd=ROOT, check=True)
    roll, demo = os.path.join(ROOT, "target/release/roll"), os.path.join(ROOT, "target/release/roll-demo")
    d = tempfile.mkdtemp(prefix="roll-switch-timing-")
    ng = os.path.join(d, "nginx")
    procs, fleet_up, nginx_up = [], False, False
    try:
        backends = start_backends(demo, a.backends, procs)
        proxy = start_nginx(ng, backends, connections=256)
        nginx_up = True
        version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip().split("/")[-1]
        for name, text in (("upstream.j2", UPSTREAM_J2),
                           ("pb.yml", PLAYBOOK), ("local", "[proxy]\nproxy-local ansible_connection=local\n")):
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        fdir = os.path.join(d, "fleet")
        subprocess.run([os.path.join(ROOT, "scripts/fleet"), "up", "1", fdir, "--port", str(free_port()),
                        "--net", "127.61", "--prefix", "proxy-ssh"], check=True, stdout=subprocess.DEVNULL)
        fleet_up = True
        with open(os.path.join(fdir, "hosts")) as f:
            ssh_inv = f.read().replace("[fleet]", "[proxy]").replace("[fleet:vars]", "[proxy:vars]")
        with open(os.path.join(d, "ssh"), "w") as f:
            f.write(ssh_inv)

        results = {}
        colour = "blue"
        for inv in ("local", "ssh"):
            steps, pauses = [], []
            for _ in range(a.runs):
                colour = "green" if colour == "blue" else "blue"
                extra = json.dumps({"backend_list": backends, "d": d, "to": colour, "batches": a.batches,
                                    "pause": f"{a.pause}s", "proxy_port": proxy})
                r = subprocess.run([roll, "play", "pb.yml", "-i", inv, "--format", "json", "-e", extra,
                                    "--known-hosts", os.path.join(fdir, "known_hosts")],
                                   cwd=d, capture_output=True, text=True)
                if r.returncode != 0:
                    sys.exit(f"error: roll failed ({inv}):\n{r.stdout}{r.stderr}")
                timeline = None
                for line in r.stdout.splitlines():
                    ev = json.loads(line)
                    res = ev.get("result") or {}
                    if isinstance(res, dict) and "timeline" in res:
                        timeline = res["timeline"]
                if not timeline:
                    sys.exit(f"error: no timeline in roll's events ({inv})")
                for b in timeline:
                    steps.append(b)
                    if "paused_s" in b:
                        pauses.append(b["paused_s"])
            results[inv] = (steps, pauses)

        # Baseline: validate + reload + wait for the old workers, by hand, on the same nginx.
        pid_file = os.path.join(ng, "nginx.pid")
        base = []
        for _ in range(a.batches * a.runs):
            t = time.monotonic()
            master = open(pid_file).read().strip()
            old = subprocess.run(["pgrep", "-P", master], capture_output=True, text=True).stdout.split()
            subprocess.run(["nginx", "-t", "-p", ng, "-c", "nginx.conf"], check=True, capture_output=True)
            subprocess.run(["nginx", "-s", "reload", "-p", ng, "-c", "nginx.conf"], check=True, stderr=subprocess.DEVNULL)
            while True:
                alive = [p for p in old if os.path.exists(f"/proc/{p}")]
                new = subprocess.run(["pgrep", "-P", master], capture_output=True, text=True).stdout.split()
                if not alive and set(new) - set(old):
                    break
                time.sleep(0.02)
            base.append((time.monotonic() - t) * 1000)
        baseline = statistics.median(base)

        bound = a.pause * 0.05 + 0.1
        print(f"switch timing: {a.batches} batches x {a.runs} runs, pause {a.pause} s, {a.backends} backends, nginx {version}")
        print(f"{'proxy':<18}{'write':>8}{'validate':>10}{'reload':>9}{'gate':>8}{'step':>9}  {'pause min/median/max':>24}  {'worst error':>12}")
        for inv, (steps, pauses) in results.items():
            med = lambda k: statistics.median(b[k] for b in steps)
            step = statistics.median(b["write_ms"] + b["validate_ms"] + b["reload_ms"] + b["gate_ms"] for b in steps)
            err = max(abs(p - a.pause) for p in pauses)
            print(f"{inv + (' (1 host)' if inv == 'ssh' else ''):<18}{med('write_ms'):>6.1f}ms{med('validate_ms'):>8.1f}ms"
                  f"{med('reload_ms'):>7.1f}ms{med('gate_ms'):>6.1f}ms{step:>7.1f}ms  "
                  f"{min(pauses):>7.3f}/{statistics.median(pauses):.3f}/{max(pauses):.3f} s  {err * 1000:>9.1f} ms"
                  f"  ({'within' if err <= bound else 'OVER'} {bound * 1000:.0f} ms)")
            results[inv] = step
        print(f"baseline (by hand: nginx -t, nginx -s reload, old workers gone): {baseline:.1f} ms median")
        print(f"roll per-batch step / baseline: local {results['local'] / baseline:.2f}, ssh {results['ssh'] / baseline:.2f}")
    finally:
        for p in procs:
            p.kill()
        if nginx_up:
            subprocess.run(["nginx", "-p", ng, "-c", "nginx.conf", "-s", "stop"], stderr=subprocess.DEVNULL)
        if fleet_up:
            subprocess.run([os.path.join(ROOT, "scripts/fleet"), "down", os.path.join(d, "fleet")], stdout=subprocess.DEVNULL)
        shutil.rmtree(d, ignore_errors=True)

if __name__ == "__main__":
    main()
