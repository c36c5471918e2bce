#!/usr/bin/env python3
"""Regenerates expected.json: every case of cases.yml rendered by ansible-playbook from the
pinned ansible-core venv (scripts/ansible-venv). Run from anywhere: tests/lookups/regen.py"""
import json, os, shutil, subprocess, sys, tempfile
import yaml  # the venv's PyYAML

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
bin_dir = subprocess.check_output([os.path.join(root, "scripts/ansible-venv")], text=True).strip()
cases = yaml.safe_load(open(os.path.join(here, "cases.yml")))
loops = yaml.safe_load(open(os.path.join(here, "loops.yml")))

USERS = [{"name": "alice", "keys": ["k1", "k2"], "mysql": {"hosts": ["db1"]}},
         {"name": "bob", "keys": []}]

def playbook(cases, loops):
    """The playbook both ansible-playbook and roll run (tests/suite/lookups.rs builds the same)."""
    tasks = []
    for c in cases:
        tasks.append({"name": c["id"], "debug": {"msg": "{{ " + c["expr"] + " }}"},
                      "register": "r_" + c["id"], "ignore_errors": True})
    for c in loops:
        tasks.append({"name": "loop_" + c["id"], "debug": {"msg": c.get("msg", "{{ item }}")},
                      "with_" + c["with"]: c["value"], "register": "r_loop_" + c["id"], "ignore_errors": True})
    ids = [c["id"] for c in cases] + ["loop_" + c["id"] for c in loops]
    tasks.append({"name": "store", "copy": {"dest": "{{ playbook_dir }}/answers.json",
        "content": "{{ {" + ", ".join("'%s': r_%s" % (i, i) for i in ids) + "} | to_nice_json }}"}})
    return [{"hosts": "all", "gather_facts": False,
             "vars": {"who": "world", "n": 3, "greeting": "hi {{ who }}", "users": USERS}, "tasks": tasks}]

with tempfile.TemporaryDirectory() as d:
    for f in ["files", "templates", "top.txt"]:
        src = os.path.join(here, f)
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, os.path.join(d, f))
    os.mkdir(os.path.join(d, "out"))
    open(os.path.join(d, "hosts"), "w").write("app1 ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    yaml.safe_dump(playbook(cases, loops), open(os.path.join(d, "pb.yml"), "w"), sort_keys=False)
    env = dict(os.environ, PATH=bin_dir + ":" + os.environ["PATH"], ROLL_LOOKUP_TEST="lookup-value",
               ANSIBLE_LOCALHOST_WARNING="false")
    env.pop("ROLL_LOOKUP_UNSET", None)
    subprocess.run(["ansible-playbook", "-i", "hosts", "pb.yml"], cwd=d, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    answers = json.load(open(os.path.join(d, "answers.json")))
out = {}
for c in cases:
    r = answers[c["id"]]
    failed = bool(r.get("failed"))
    if failed != bool(c.get("error")):
        print("MISMATCH case %s: ansible %s, cases.yml says error=%s: %s" % (c["id"], "failed" if failed else "passed", c.get("error"), r.get("msg")))
    out[c["id"]] = {"failed": True, "ansible_msg": r.get("msg")} if failed else {"msg": r.get("msg")}
for c in loops:
    r = answers["loop_" + c["id"]]
    if r.get("failed") and not r.get("results"):
        out["loop_" + c["id"]] = {"failed": True, "ansible_msg": r.get("msg")}
    else:
        out["loop_" + c["id"]] = {"items": [x.get("msg") for x in r.get("results", [])]}
json.dump(out, open(os.path.join(here, "expected.json"), "w"), indent=2, sort_keys=True)
open(os.path.join(here, "expected.json"), "a").write("\n")
print("wrote", os.path.join(here, "expected.json"))
