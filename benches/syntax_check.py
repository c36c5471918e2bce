#!/usr/bin/env python3
"""Benchmark: `roll play --syntax-check` of a generated playbook with 1,000 tasks against an
inventory of 5,000 hosts in 200 groups. Prints the median wall time and peak RSS of roll, and,
measured in the same run, the same figures for `roll --version` (process start-up, the floor)
and for `ansible-playbook --syntax-check` when ANSIBLE_PLAYBOOK points at one.

Usage: benches/syntax_check.py [--runs N] [--roll target/release/roll]
Targets (issue 2): under 0.5 s and under 100 MiB.
"""
import argparse, os, statistics, subprocess, sys, tempfile, time

def generate(d, hosts=5000, groups=200, tasks=1000):
    per = hosts // groups
    with open(os.path.join(d, "hosts"), "w") as f:
        for g in range(groups):
            f.write(f"[g{g:03d}]\n")
            for h in range(per):
                f.write(f"h{g:03d}-{h:02d} ansible_connection=local slot={h}\n")
            f.write(f"[g{g:03d}:vars]\nport={8000 + g}\nzone=z{g % 7}\n")
        f.write("[web:children]\n" + "".join(f"g{g:03d}\n" for g in range(0, groups, 2)))
    os.makedirs(os.path.join(d, "templates"), exist_ok=True)
    with open(os.path.join(d, "templates", "app.conf.j2"), "w") as f:
        f.write("port={{ port }}\n{% for h in groups['web'] %}peer {{ h }}\n{% endfor %}\n")
    kinds = [
        '      command: "echo {{ inventory_hostname }} {{ port }}"\n      register: r{i}\n      changed_when: r{i}.rc != 0\n',
        '      template: {{ src: app.conf.j2, dest: "/tmp/{{{{ zone }}}}-{i}.conf", mode: "0644" }}\n      notify: reload\n',
        '      file: {{ path: "/tmp/roll-bench-{i}", state: directory }}\n      when: slot | int > 3\n',
        '      debug: {{ msg: "{{{{ groups[\'web\'] | length }}}} peers" }}\n      tags: [info]\n',
        '      shell: "test -e /tmp/x-{i} || true"\n      loop: [a, b, c]\n',
    ]
    with open(os.path.join(d, "site.yml"), "w") as f:
        f.write("- name: big\n  hosts: all\n  serial: 10%\n  vars:\n    extra: 1\n  tasks:\n")
        for i in range(tasks):
            f.write(f"    - name: task {i}\n" + kinds[i % len(kinds)].format(i=i))
        f.write("  handlers:\n    - name: reload\n      command: echo reload\n")

def measure(cmd, cwd, runs):
    times, rss = [], []
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(p.pid, 0)
        times.append(time.perf_counter() - t)
        rss.append(usage.ru_maxrss / 1024.0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            sys.exit(f"{' '.join(cmd)} exited {code}: {p.stderr.read().decode()[:2000]}")
    return statistics.median(times), max(rss)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--roll", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "roll"))
    a = ap.parse_args()
    roll = os.path.abspath(a.roll)
    with tempfile.TemporaryDirectory() as d:
        generate(d)
        base_t, base_m = measure([roll, "--version"], d, a.runs)
        t, m = measure([roll, "play", "site.yml", "-i", "hosts", "--syntax-check"], d, a.runs)
        print(f"roll --version (start-up floor): {base_t*1000:8.1f} ms  peak {base_m:6.1f} MiB")
        print(f"roll --syntax-check 1000 tasks x 5000 hosts / 200 groups: {t*1000:8.1f} ms  peak {m:6.1f} MiB")
        print(f"ratio to start-up floor: {t/base_t:.1f}x")
        ans = os.environ.get("ANSIBLE_PLAYBOOK")
        if ans:
            at, am = measure([ans, "site.yml", "-i", "hosts", "--syntax-check"], d, max(1, a.runs // 2))
            print(f"ansible-playbook --syntax-check: {at*1000:8.1f} ms  peak {am:6.1f} MiB  (roll is {at/t:.1f}x faster)")
        ok = t < 0.5 and m < 100
        print(f"target (< 500 ms, < 100 MiB): {'met' if ok else 'NOT met'}")
        sys.exit(0 if ok else 1)

if __name__ == "__main__":
    main()
