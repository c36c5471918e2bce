#!/usr/bin/env python3
"""Benchmark: `roll play --syntax-check` of a generated playbook with 1,000 tasks against an
inventory of 5,000 hosts in 200 groups. Prints the median wall time and peak RSS of roll, and,
measured in the same run, the same figures for `roll --version` (process start-up, the floor)
and for `ansible-playbook --syntax-check` when ANSIBLE_PLAYBOOK points at one.

Also, in the same run, a playbook of 20 roles x 50 tasks (each role with defaults, vars, a
template of its own and a dependency on a shared role) on the same inventory, with its ratio to
the flat playbook: roles are read once however often they are used.

Usage: benches/syntax_check.py [--runs N] [--roll target/release/roll]
Targets (issue 2): under 0.5 s and under 100 MiB; (issue 13) the roles playbook under 0.1 s and
50 MiB.
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

def generate_roles(d, roles=20, tasks=50):
    """site-roles.yml: `roles:` naming 20 roles of 50 tasks each, all depending on `base`."""
    kinds = [
        '- name: "{r} task {i}"\n  command: "echo {{{{ inventory_hostname }}}} {{{{ {r}_port }}}}"\n  register: r{i}\n  changed_when: r{i}.rc != 0\n',
        '- name: "{r} task {i}"\n  template: {{ src: role.conf.j2, dest: "/tmp/{r}-{i}.conf" }}\n  notify: reload {r}\n',
        '- name: "{r} task {i}"\n  file: {{ path: "/tmp/roll-bench-{r}-{i}", state: directory }}\n  when: slot | int > 3\n',
        '- name: "{r} task {i}"\n  debug: {{ msg: "{{{{ {r}_name }}}} {{{{ groups[\'web\'] | length }}}}" }}\n  tags: [info]\n',
        '- name: "{r} task {i}"\n  shell: "test -e /tmp/x-{i} || true"\n  loop: [a, b, c]\n',
    ]
    def write(path, text):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    write(os.path.join(d, "roles", "base", "tasks", "main.yml"), '- name: base\n  debug: { msg: base }\n')
    for k in range(roles):
        r = f"r{k:02d}"
        root = os.path.join(d, "roles", r)
        write(os.path.join(root, "defaults", "main.yml"), f"{r}_port: {9000 + k}\n{r}_name: {r}\n")
        write(os.path.join(root, "vars", "main.yml"), f"{r}_vars: true\n")
        write(os.path.join(root, "meta", "main.yml"), "dependencies: [base]\n")
        write(os.path.join(root, "templates", "role.conf.j2"), f"port={{{{ {r}_port }}}}\n")
        write(os.path.join(root, "handlers", "main.yml"), f"- name: reload {r}\n  command: echo reload\n")
        write(os.path.join(root, "tasks", "main.yml"), "".join(kinds[i % len(kinds)].format(r=r, i=i) for i in range(tasks)))
    with open(os.path.join(d, "site-roles.yml"), "w") as f:
        f.write("- name: roles\n  hosts: all\n  serial: 10%\n  roles:\n" + "".join(f"    - r{k:02d}\n" for k in range(roles)))

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
        generate_roles(d)
        base_t, base_m = measure([roll, "--version"], d, a.runs)
        t, m = measure([roll, "play", "site.yml", "-i", "hosts", "--syntax-check"], d, a.runs)
        rt, rm = measure([roll, "play", "site-roles.yml", "-i", "hosts", "--syntax-check"], d, a.runs)
        print(f"roll --version (start-up floor): {base_t*1000:8.1f} ms  peak {base_m:6.1f} MiB")
        print(f"roll --syntax-check 1000 tasks x 5000 hosts / 200 groups: {t*1000:8.1f} ms  peak {m:6.1f} MiB")
        print(f"ratio to start-up floor: {t/base_t:.1f}x")
        print(f"roll --syntax-check 20 roles x 50 tasks x 5000 hosts: {rt*1000:8.1f} ms  peak {rm:6.1f} MiB"
              f"  ({rt/t:.2f}x the flat playbook)")
        roles_ok = rt < 0.1 and rm < 50
        print(f"roles target (< 100 ms, < 50 MiB): {'met' if roles_ok else 'NOT met'}")
        ans = os.environ.get("ANSIBLE_PLAYBOOK")
        if ans:
            at, am = measure([ans, "site.yml", "-i", "hosts", "--syntax-check"], d, max(1, a.runs // 2))
            print(f"ansible-playbook --syntax-check: {at*1000:8.1f} ms  peak {am:6.1f} MiB  (roll is {at/t:.1f}x faster)")
        ok = t < 0.5 and m < 100 and roles_ok
        print(f"target (< 500 ms, < 100 MiB): {'met' if ok else 'NOT met'}")
        sys.exit(0 if ok else 1)

if __name__ == "__main__":
    main()
