#!/usr/bin/env python3
"""Regenerates expected.json: every case of cases.yml rendered by ansible-playbook from the pinned
ansible-core venv (scripts/ansible-venv), with the community.general and ansible.utils collections
of the `ansible` 12 package (the one built on ansible-core 2.19) and the Python libraries their
filters need (jmespath, netaddr, passlib, and bcrypt 4.0 as passlib's bcrypt backend: bcrypt 5 refuses
the long password passlib probes it with), installed into the venv from PyPI. Run from anywhere:
tests/filters/regen.py"""
import glob, json, os, shutil, subprocess, sys, tempfile, zipfile
import yaml  # the venv's PyYAML

ANSIBLE = "12.3.0"
here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
bin_dir = subprocess.check_output([os.path.join(root, "scripts/ansible-venv")], text=True).strip()
pip = os.path.join(bin_dir, "pip")
subprocess.run([pip, "install", "--quiet", "--disable-pip-version-check", "jmespath", "netaddr", "passlib", "bcrypt==4.0.1"], check=True)
collections = os.path.expanduser("~/.cache/roll/ansible-%s-collections" % ANSIBLE)
if not os.path.isdir(os.path.join(collections, "ansible_collections/ansible/utils")):
    with tempfile.TemporaryDirectory() as dl:
        subprocess.run([pip, "download", "--quiet", "--no-deps", "-d", dl, "ansible==" + ANSIBLE], check=True)
        wheel = zipfile.ZipFile(glob.glob(os.path.join(dl, "ansible-*.whl"))[0])
        wanted = ("ansible_collections/community/general/", "ansible_collections/ansible/utils/")
        wheel.extractall(collections, [n for n in wheel.namelist() if n.startswith(wanted)])
cases = yaml.safe_load(open(os.path.join(here, "cases.yml")))

USERS = [{"name": "alice", "keys": ["k1", "k2"], "mysql": {"hosts": ["db1"]}},
         {"name": "bob", "keys": []}]
DATA = {"servers": [{"name": "web-a", "port": 8081, "state": "up"},
                    {"name": "web-b", "port": 8080, "state": "down"},
                    {"name": "web-c", "port": 8082, "state": "up"}]}

def playbook(cases):
    """The playbook both ansible-playbook and roll run (tests/suite/filters.rs builds the same)."""
    tasks = [{"name": c["id"], "debug": {"msg": "{{ " + c["expr"] + " }}"},
              "register": "r_" + c["id"], "ignore_errors": True} for c in cases]
    tasks.append({"name": "store", "copy": {"dest": "{{ playbook_dir }}/answers.json",
        "content": "{{ {" + ", ".join("'%s': r_%s" % (c["id"], c["id"]) for c in cases) + "} | to_nice_json }}"}})
    return [{"hosts": "all", "gather_facts": False, "vars": {"users": USERS, "data": DATA}, "tasks": tasks}]

with tempfile.TemporaryDirectory() as d:
    open(os.path.join(d, "hosts"), "w").write("app1 ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    yaml.safe_dump(playbook(cases), open(os.path.join(d, "pb.yml"), "w"), sort_keys=False)
    env = dict(os.environ, PATH=bin_dir + ":" + os.environ["PATH"], ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_COLLECTIONS_PATH=collections, TZ="UTC")
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
# The template vars (ansible_managed...): managed/pb.yml renders managed/templates/*.j2.
with tempfile.TemporaryDirectory() as d:
    shutil.copytree(os.path.join(here, "managed"), d, dirs_exist_ok=True)
    os.makedirs(os.path.join(d, "out"), exist_ok=True)
    open(os.path.join(d, "hosts"), "w").write("app1 ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    subprocess.run(["ansible-playbook", "-i", "hosts", "pb.yml"], cwd=d, env=env, check=True, stdout=subprocess.DEVNULL)
    for name in ["default", "custom"]:
        shutil.copy(os.path.join(d, "out", name + ".txt"), os.path.join(here, "managed", name + ".expected"))
# ansible_parent_role_names: the msg lines of parents/pb.yml.
with tempfile.TemporaryDirectory() as d:
    shutil.copytree(os.path.join(here, "parents"), d, dirs_exist_ok=True)
    open(os.path.join(d, "hosts"), "w").write("app1 ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    text = subprocess.run(["ansible-playbook", "-i", "hosts", "pb.yml"], cwd=d, env=env, check=True,
                          capture_output=True, text=True).stdout
    lines = [l.strip() for l in text.splitlines() if l.strip().startswith('"msg": ')]
    open(os.path.join(here, "parents.expected"), "w").write("\n".join(lines) + "\n")
json.dump(out, open(os.path.join(here, "expected.json"), "w"), indent=2, sort_keys=True)
open(os.path.join(here, "expected.json"), "a").write("\n")
print("wrote", os.path.join(here, "expected.json"))
