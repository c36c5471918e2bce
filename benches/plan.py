#!/usr/bin/env python3
"""`roll plan` on a loopback fleet: 100 app servers and one proxy, a template per server and the
batched switch in 10 batches (the dry run reads each server's file and the proxy's state and
upstream, renders everything, and writes the plan file).

  python3 benches/plan.py [--hosts 100] [--batches 10] [--runs 5]

Warm: masters kept between runs (`--ssh-persist`), as the SSH benchmarks measure. Cold: each
run opens its SSH connections (a CI job that keeps none). Baselines, in the same run: one plain
`ssh HOST cat FILE` per host, 50 at a time, over warm ControlMaster connections, and with new
connections each (the floor of asking every host one thing). Target: under 2 s.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time
from benchlib import UPSTREAM_J2, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


PLAYBOOK = """
- name: App servers
  hosts: app
  tasks:
    - template: { src: app.conf.j2, dest: "{{ base }}/{{ inventory_hostname }}/app.conf" }
- name: Proxy
  hosts: proxy
  tasks:
    - roll.nginx_switch:
        app: web
        to: green
        backends: "{{ groups['app'] }}"
        ports: { blue: 8081, green: 8082 }
        template: upstream.j2
        dest: "{{ base }}/proxy/web-upstream.conf"
        batches: "{{ batches }}"
        pause: 30s
        database: { max_connections: 5000, pool: 20 }
        state_dir: "{{ base }}/proxy/state"
"""

def timed(cmd, **kw):
    t = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return time.monotonic() - t, r

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    roll = os.path.join(ROOT, "target/release/roll")
    d = tempfile.mkdtemp(prefix="roll-plan-bench-")
    fleet = os.path.join(d, "fleet")
    up = False
    try:
        subprocess.run([os.path.join(ROOT, "scripts/fleet"), "up", str(a.hosts + 1), fleet, "--port",
                        str(free_port()), "--net", "127.63", "--prefix", "h"], check=True, stdout=subprocess.DEVNULL)
        up = True
        lines = [l for l in open(os.path.join(fleet, "hosts")).read().splitlines() if " ansible_host=" in l]
        with open(os.path.join(d, "hosts"), "w") as f:
            f.write("[app]\n" + "\n".join(lines[:a.hosts]) + "\n\n[proxy]\n" + lines[a.hosts] + "\n")
        base = os.path.join(d, "remote")
        os.makedirs(os.path.join(base, "proxy"))
        # A live upstream (all blue) so the switch plans its batches.
        with open(os.path.join(base, "proxy", "web-upstream.conf"), "w") as f:
            f.write("upstream web { server 127.0.0.1:8081; }\n")
        for name, text in (("pb.yml", PLAYBOOK),
                           ("app.conf.j2", "host={{ inventory_hostname }}\naddress={{ ansible_host }}\n"),
                           ("upstream.j2", UPSTREAM_J2)):
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        env = {**os.environ, "ROLL_SSH_CONFIG": os.path.join(fleet, "ssh_config"), "NO_COLOR": "1"}
        args = [roll, "plan", "pb.yml", "-i", "hosts", "-e", f"base={base}", "-e", f"batches={a.batches}",
                "-o", "plan.json", "-q"]
        cold, warm, base_t = [], [], []
        for _ in range(a.runs):
            t, r = timed(args, cwd=d, env=env)
            if r.returncode != 0:
                sys.exit(f"error: roll plan failed:\n{r.stdout[-3000:]}{r.stderr[-2000:]}")
            cold.append(t)
        plan = json.load(open(os.path.join(d, "plan.json")))
        # Warm: masters kept between runs (the first run opens them).
        subprocess.run(args + ["--ssh-persist", "120"], cwd=d, env=env, capture_output=True)
        for _ in range(a.runs):
            t, r = timed(args + ["--ssh-persist", "120"], cwd=d, env=env)
            warm.append(t)
        addrs = [l.split("ansible_host=")[1].split()[0] for l in lines[:a.hosts + 1]]
        cfg = os.path.join(fleet, "ssh_config")
        cm = f"-o ControlPath={d}/cm-%h -o ControlMaster=auto -o ControlPersist=120"
        def plain(opts):
            script = f"xargs -P 50 -I{{}} ssh -F {cfg} {opts} {{}} cat /etc/hostname > /dev/null"
            t, r = timed(["sh", "-c", script], input="\n".join(addrs) + "\n")
            if r.returncode != 0:
                sys.exit(f"error: baseline ssh failed: {r.stderr[-2000:]}")
            return t
        for _ in range(a.runs):
            base_t.append(plain(""))
        plain(cm)  # open the baseline's masters
        base_w = [plain(cm) for _ in range(a.runs)]
        subprocess.run(["sh", "-c", f"xargs -P 50 -I{{}} ssh -F {cfg} {cm} -O exit {{}} 2>/dev/null"],
                       input="\n".join(addrs) + "\n", text=True)
        c, w, b = statistics.median(cold), statistics.median(warm), statistics.median(base_t)
        bw = statistics.median(base_w)
        switch = [s for s in plan["steps"] if s["task"] == "roll.nginx_switch"]
        print(f"roll plan: {a.hosts} app hosts + 1 proxy, {a.batches} batches, {plan['changes']} changes planned, {a.runs} runs each")
        print(f"  warm (--ssh-persist):       median {w * 1000:.0f} ms   baseline (plain ssh per host, warm masters) {bw * 1000:.0f} ms   ratio {w / bw:.2f}")
        print(f"  cold (new SSH connections): median {c * 1000:.0f} ms   baseline (plain ssh per host, new connections) {b * 1000:.0f} ms   ratio {c / b:.2f}")
        print(f"  target 2 s: warm {'met' if w < 2.0 else 'NOT met'}, cold {'met' if c < 2.0 else 'NOT met (bound by SSH handshakes: see the cold baseline)'}")
        if not switch:
            print("  (no switch step in the plan?)")
    finally:
        if up:
            subprocess.run([os.path.join(ROOT, "scripts/fleet"), "down", fleet], stdout=subprocess.DEVNULL)
        shutil.rmtree(d, ignore_errors=True)

if __name__ == "__main__":
    main()
