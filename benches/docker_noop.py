#!/usr/bin/env python3
"""Benchmark: `docker_container` on N fleet hosts (default 20) where nothing changed, against
one `docker inspect` per host over warm SSH (ControlMaster), measured in the same run.

roll runs over masters kept from an untimed first run (--ssh-persist), as the baseline's
masters are warmed before timing. Each host's container publishes on the host's own address.

Usage: benches/docker_noop.py [--hosts 20] [--runs 7]     Target (issue 4): ratio <= 1.5
"""
import argparse, asyncio, os, shutil, socket, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from ssh_fleet import run_all, close_roll_masters  # noqa: E402

PLAYBOOK = """- hosts: fleet
  gather_facts: false
  tasks:
    - community.docker.docker_container:
        name: "bench-{{ inventory_hostname }}"
        image: "{{ image }}"
        ports: ["{{ ansible_host }}:18090:8080"]
        env: { COLOUR: blue }
        labels: { roll.bench: "1" }
"""

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--roll", default=os.path.join(ROOT, "target", "release", "roll"))
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="roll-dbench-")
    port = free_port()
    try:
        subprocess.run([os.path.join(ROOT, "scripts", "registry"), "up", os.path.join(d, "reg"), str(port)], check=True, stdout=subprocess.DEVNULL)
        image = subprocess.run([os.path.join(ROOT, "scripts", "demo-image"), f"127.0.0.1:{port}/roll-demo", "1"], check=True, capture_output=True, text=True).stdout.strip()
        subprocess.run(["docker", "push", "--quiet", image], check=True, stdout=subprocess.DEVNULL)
        fleet = os.path.join(d, "fleet")
        subprocess.run([os.path.join(ROOT, "scripts", "fleet"), "up", str(a.hosts), fleet, "--port", str(free_port()), "--net", "127.79"], check=True, stdout=subprocess.DEVNULL)
        open(os.path.join(fleet, "bench.yml"), "w").write(PLAYBOOK)
        roll = [os.path.abspath(a.roll), "play", "bench.yml", "-i", "hosts", "--known-hosts", "known_hosts", "-f", str(a.hosts), "--ssh-persist", "300", "-e", f"image={image}"]
        first = subprocess.run(roll, cwd=fleet, capture_output=True, text=True)
        if first.returncode != 0:
            sys.exit(first.stdout[-3000:])
        addrs = [l.split("ansible_host=")[1].split()[0] for l in open(os.path.join(fleet, "hosts")) if "ansible_host=" in l]
        names = [l.split()[0] for l in open(os.path.join(fleet, "hosts")) if "ansible_host=" in l]
        cm = ["-F", os.path.join(fleet, "ssh_config"), "-o", f"ControlPath={fleet}/cm-%h", "-o", "ControlMaster=auto", "-o", "ControlPersist=300"]
        asyncio.run(run_all([[["ssh", *cm, ad, "true"]] for ad in addrs]))
        def run_roll():
            r = subprocess.run(roll, cwd=fleet, capture_output=True, text=True)
            unchanged = all("changed=0 " in l for l in r.stdout.splitlines() if " : ok=" in l)
            return 0 if r.returncode == 0 and unchanged else 1
        def baseline():
            return asyncio.run(run_all([[["ssh", *cm, ad, f"docker inspect bench-{n} >/dev/null"]] for ad, n in zip(addrs, names)]))
        times = {"roll": [], "inspect": []}
        fails = {"roll": 0, "inspect": 0}
        for _ in range(a.runs):  # interleaved, so both see the same machine state
            for k, fn in (("roll", run_roll), ("inspect", baseline)):
                t = time.perf_counter(); fails[k] += fn(); times[k].append(time.perf_counter() - t)
        r, b = statistics.median(times["roll"]), statistics.median(times["inspect"])
        print(f"N={a.hosts} hosts, docker_container unchanged")
        print(f"  roll (one docker inspect per host)   median {r*1000:7.1f} ms  failures {fails['roll']}")
        print(f"  ssh + docker inspect, warm masters   median {b*1000:7.1f} ms  failures {fails['inspect']}")
        print(f"  ratio roll / baseline: {r/b:.2f}  (target <= 1.5)")
        asyncio.run(run_all([[["ssh", *cm, "-O", "exit", ad]] for ad in addrs]))
        close_roll_masters(fleet)
        sys.exit(0 if fails["roll"] == 0 and fails["inspect"] == 0 else 1)
    finally:
        subprocess.run("docker ps -aq --filter label=roll.bench=1 | xargs -r docker rm -f", shell=True, stdout=subprocess.DEVNULL)
        subprocess.run(["docker", "image", "rm", "-f", f"127.0.0.1:{port}/roll-demo:1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run([os.path.join(ROOT, "scripts", "fleet"), "down", os.path.join(d, "fleet")], stdout=subprocess.DEVNULL)
        subprocess.run([os.path.join(ROOT, "scripts", "registry"), "down", os.path.join(d, "reg")], stdout=subprocess.DEVNULL)
        shutil.rmtree(d, ignore_errors=True)

if __name__ == "__main__":
    main()
