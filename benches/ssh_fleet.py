#!/usr/bin/env python3
"""Benchmark: five tasks (`true`, `echo x`, `docker --version || true`, `cat /etc/hostname`,
`date`) on every host of a loopback fleet of N hosts, for N = 10, 50 and 200.

Measured in the same invocation, each as the median of several runs:
  roll       `roll play` with the five tasks (forks = N) through one persistent remote shell per
             host (the default transport), over masters kept from an untimed warm-up run
             (--ssh-persist); its peak RSS is reported
  roll-exec  the same with a new ssh exec channel per command (--ssh-transport exec)
  warm-cm    plain ssh over warm ControlMaster connections to all hosts, in parallel, one ssh
             exec per command (the usual hand-rolled baseline)
  floor      the five commands joined into one ssh exec per host over the warm masters
  pyinfra / ansible (optional, --tools): the same five commands from a venv installed from PyPI
  roll+facts (--facts): roll's run with `gather_facts: true` (one more remote command per host);
             printed against roll's facts-off run as a ratio and as extra round trips per host
             (the time facts add over the time one of the five tasks costs)
  lineinfile, stat, service (--modules): roll's run of five tasks of that module with nothing to
             change (a line already in a file; a file's stat; a sysvinit service already running,
             the bench's own /etc/init.d script, removed afterwards), against warm-cm's five
             commands: the ratio is the time one unchanged task costs per host over one plain
             ssh round trip (target <= 1.2)

Usage: benches/ssh_fleet.py [--sizes 10,50,200] [--runs 5] [--roll target/release/roll] [--tools VENV] [--facts] [--modules]
Targets (issue 3): at N = 50 roll <= 0.75 x warm-cm and <= 0.6 x pyinfra; at N = 200 zero
failures and roll's peak RSS under 100 MiB.
"""
import argparse, asyncio, os, shutil, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CMDS = ["true", "echo x", "docker --version || true", "cat /etc/hostname", "date"]

PLAYBOOK = """- hosts: fleet
  gather_facts: false
  tasks:
""" + "".join(f"    - shell: {c!r}\n" for c in CMDS)
PLAYBOOK_FACTS = PLAYBOOK.replace("gather_facts: false", "gather_facts: true")

# One module, five times, with nothing to change once the untimed first run made the file.
SERVICE = "roll-bench-svc"
MODULES = {
    "lineinfile": "lineinfile: {path: '{{ playbook_dir }}/{{ inventory_hostname }}.conf', line: 'listen 8080', create: true}",
    "stat": "stat: {path: '{{ playbook_dir }}/{{ inventory_hostname }}.conf'}",
    "service": f"service: {{name: {SERVICE}, state: started}}",
}
def module_playbook(task):
    return "- hosts: fleet\n  gather_facts: false\n  tasks:\n" + f"    - {task}\n" * len(CMDS)
INIT_SCRIPT = f"""#!/bin/sh
# roll's benches/ssh_fleet.py --modules: a service that always runs.
case "$1" in status) echo "{SERVICE} is running"; exit 0;; start|stop|restart|reload|force-reload) exit 0;; *) exit 3;; esac
"""

def hosts_of(d):
    out = []
    for line in open(os.path.join(d, "hosts")):
        if "ansible_host=" in line:
            out.append(line.split("ansible_host=")[1].split()[0])
    return out

async def run_all(argvs):
    """Run argv lists concurrently; each entry is a list of commands run in sequence. Returns failures."""
    async def seq(cmds):
        fails = 0
        for argv in cmds:
            p = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            if await p.wait() != 0:
                fails += 1
        return fails
    return sum(await asyncio.gather(*(seq(c) for c in argvs)))

def timed(fn, runs):
    times, fails = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        fails += fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), fails

def run_roll(roll, d, n, transport="exec", playbook="bench.yml"):
    env = dict(os.environ, ROLL_SSH_TRANSPORT=transport)
    p = subprocess.Popen([roll, "play", playbook, "-i", "hosts", "--known-hosts", "known_hosts", "-f", str(n), "--ssh-persist", "300"],
                         cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    out = p.stdout.read().decode()
    run_roll.rss = max(getattr(run_roll, "rss", 0), usage.ru_maxrss / 1024)
    code = os.waitstatus_to_exitcode(status)
    failed = sum(1 for l in out.splitlines() if l.startswith(("fatal:", "failed:")))
    return failed + (0 if code == 0 else 1)

def bench(n, a):
    d = tempfile.mkdtemp(prefix="roll-bench-")
    try:
        subprocess.run([os.path.join(ROOT, "scripts", "fleet"), "up", str(n), d, "--port", str(a.port)], check=True, stdout=subprocess.DEVNULL)
        open(os.path.join(d, "bench.yml"), "w").write(PLAYBOOK)
        open(os.path.join(d, "bench-facts.yml"), "w").write(PLAYBOOK_FACTS)
        addrs = hosts_of(d)
        cfg = os.path.join(d, "ssh_config")
        cm = ["-F", cfg, "-o", f"ControlPath={d}/cm-%h", "-o", "ControlMaster=auto", "-o", "ControlPersist=300"]
        # Warm the masters (not timed), as the baseline's definition says.
        asyncio.run(run_all([[["ssh", *cm, ad, "true"]] for ad in addrs]))
        warm = lambda: asyncio.run(run_all([[["ssh", *cm, ad, c] for c in CMDS] for ad in addrs]))
        floor = lambda: asyncio.run(run_all([[["ssh", *cm, ad, "; ".join(CMDS)]] for ad in addrs]))
        run_roll.rss = 0
        roll = lambda: run_roll(a.roll, d, n, "shell")
        roll_exec = lambda: run_roll(a.roll, d, n, "exec")
        roll()  # open roll's persistent masters (not timed), like the baselines' warm-up
        results = {}
        results["roll"] = timed(roll, a.runs)
        if a.facts:
            results["roll+facts"] = timed(lambda: run_roll(a.roll, d, n, "shell", "bench-facts.yml"), a.runs)
        if a.modules:
            for name, task in MODULES.items():
                book = f"bench-{name}.yml"
                open(os.path.join(d, book), "w").write(module_playbook(task))
                run = lambda: run_roll(a.roll, d, n, "shell", book)
                run()  # the change, once (not timed): the runs measured change nothing
                results[name] = timed(run, a.runs)
        results["roll-exec"] = timed(roll_exec, a.runs)
        results["warm-cm"] = timed(warm, a.runs)
        results["floor"] = timed(floor, a.runs)
        if a.tools:
            results.update(tools(a, d, addrs, n))
        asyncio.run(run_all([[["ssh", *cm, "-O", "exit", ad]] for ad in addrs]))
        close_roll_masters(d)
        return results, run_roll.rss
    finally:
        subprocess.run([os.path.join(ROOT, "scripts", "fleet"), "down", d], stdout=subprocess.DEVNULL)
        shutil.rmtree(d, ignore_errors=True)

def close_roll_masters(d):
    """Stop the masters roll kept with --ssh-persist for this fleet (they name its key file)."""
    key = os.path.join(d, "id_ed25519")
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                args = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if args and args[0] == b"ssh" and key.encode() in args and b"-M" in args:
                try:
                    os.kill(int(p), 15)
                except ProcessLookupError:
                    pass

def tools(a, d, addrs, n):
    out = {}
    py = os.path.join(a.tools, "bin")
    pyinfra = os.path.join(py, "pyinfra")
    if os.path.exists(pyinfra):
        inv = os.path.join(d, "pyinfra_inv.py")
        with open(inv, "w") as f:
            f.write("fleet = [" + ", ".join(f"({ad!r}, {{'ssh_port': {a.port}, 'ssh_user': 'root', 'ssh_key': {os.path.join(d, 'id_ed25519')!r}, 'ssh_known_hosts_file': {os.path.join(d, 'known_hosts')!r}}})" for ad in addrs) + "]\n")
        with open(os.path.join(d, "pyinfra_deploy.py"), "w") as f:
            f.write("from pyinfra.operations import server\n" + "".join(f"server.shell(name={c!r}, commands=[{c!r}])\n" for c in CMDS))
        def run():
            r = subprocess.run([pyinfra, "-y", "--parallel", str(n), inv, "pyinfra_deploy.py"], cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return 0 if r.returncode == 0 else 1
        out["pyinfra"] = timed(run, max(1, a.runs // 2))
    ap = os.path.join(py, "ansible-playbook")
    if os.path.exists(ap):
        env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="True", ANSIBLE_SSH_ARGS=f"-F {d}/ssh_config -o ControlMaster=auto -o ControlPersist=60s")
        def run():
            r = subprocess.run([ap, "-i", "hosts", "bench.yml", "-f", str(n), "-e", f"ansible_python_interpreter={sys.executable}"],
                               cwd=d, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return 0 if r.returncode == 0 else 1
        out["ansible"] = timed(run, max(1, a.runs // 2))
    return out

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,50,200")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--port", type=int, default=2300)
    ap.add_argument("--roll", default=os.path.join(ROOT, "target", "release", "roll"))
    ap.add_argument("--tools", help="a venv with pyinfra and/or ansible-core to compare against")
    ap.add_argument("--facts", action="store_true", help="also run roll with gather_facts on")
    ap.add_argument("--modules", action="store_true", help="also run lineinfile, stat and service tasks that change nothing")
    a = ap.parse_args()
    a.roll = os.path.abspath(a.roll)
    ok = True
    init = f"/etc/init.d/{SERVICE}"
    if a.modules:
        # The loopback fleet's hosts are this machine: one init script serves them all.
        with open(init, "w") as f:
            f.write(INIT_SCRIPT)
        os.chmod(init, 0o755)
    try:
        for n in [int(x) for x in a.sizes.split(",")]:
            ok &= report(n, a)
    finally:
        if a.modules:
            os.remove(init)
    sys.exit(0 if ok else 1)

def report(n, a):
    """Run the benchmark on N hosts and print it; whether no run failed."""
    res, rss = bench(n, a)
    base = res["warm-cm"][0]
    print(f"N={n}")
    for k, (t, f) in res.items():
        print(f"  {k:9s} median {t*1000:8.1f} ms  failures {f}  ratio to warm-cm {t/base:5.2f}")
    print(f"  roll peak RSS {rss:.1f} MiB")
    print(f"  roll / floor {res['roll'][0]/res['floor'][0]:.2f}")
    if "roll+facts" in res:
        on, off = res["roll+facts"][0], res["roll"][0]
        per_task = off / len(CMDS)
        print(f"  facts on / off {on/off:.2f}  (+{(on-off)*1000:.1f} ms = {(on-off)/per_task:.2f} task round trips per host)")
    for name in MODULES:
        if name in res:
            print(f"  {name} unchanged: one task per host / one plain ssh round trip {res[name][0]/base:.2f}  (target <= 1.2)")
    if "pyinfra" in res:
        print(f"  roll / pyinfra {res['roll'][0]/res['pyinfra'][0]:.2f}")
    return all(f == 0 for _, f in res.values())

if __name__ == "__main__":
    main()
