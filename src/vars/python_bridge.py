# roll's bridge to Jinja filter and test plugins written in Python (src/vars/python.rs starts it).
#
# One line of JSON in: the plugin files, each {"path", "kind": "filter"|"test", "prefix",
# and for a collection's file "root" (the directory holding ansible_collections/) and "module"
# (its dotted name, so that its relative imports work)}. One line out: {"names": [[kind, name]],
# "problems": [[path, error]]}. Then one request per line, {"kind", "name", "args", "kwargs"},
# and one answer per line, {"ok": value} or {"error": text, "type": class name}, until stdin
# closes. The protocol owns fd 1: whatever a plugin prints goes to stderr, which roll discards.
import importlib
import importlib.util
import json
import os
import sys
import types

protocol = os.fdopen(os.dup(1), "w")
sys.stdout = sys.stderr


def ansible_shim():
    """Without ansible-core installed, give plugins the few names they import from it."""
    try:
        import ansible.errors  # noqa: F401

        return
    except Exception:
        pass

    def module(name, **names):
        m = types.ModuleType(name)
        m.__dict__.update(names)
        sys.modules[name] = m
        return m

    class AnsibleError(Exception):
        def __init__(self, message="", obj=None, *args, **kwargs):
            super().__init__(message)
            self.message = message

    class AnsibleTemplateError(AnsibleError):
        pass

    class AnsibleFilterError(AnsibleTemplateError):
        pass

    class AnsibleFilterTypeError(AnsibleTemplateError, TypeError):
        pass

    errors = dict(
        AnsibleError=AnsibleError,
        AnsibleTemplateError=AnsibleTemplateError,
        AnsibleFilterError=AnsibleFilterError,
        AnsibleFilterTypeError=AnsibleFilterTypeError,
        AnsibleUndefinedVariable=type("AnsibleUndefinedVariable", (AnsibleTemplateError,), {}),
        AnsibleOptionsError=type("AnsibleOptionsError", (AnsibleError,), {}),
    )

    def to_text(obj, encoding="utf-8", errors="surrogate_or_strict", nonstring="simplerepr"):
        if isinstance(obj, bytes):
            return obj.decode(encoding, "surrogateescape" if "surrogate" in errors else errors)
        return obj if isinstance(obj, str) else str(obj)

    def to_bytes(obj, encoding="utf-8", errors="surrogate_or_strict", nonstring="simplerepr"):
        if isinstance(obj, bytes):
            return obj
        return to_text(obj).encode(encoding, "surrogateescape" if "surrogate" in errors else errors)

    text = dict(to_text=to_text, to_native=to_text, to_bytes=to_bytes)
    six = dict(
        string_types=(str,),
        text_type=str,
        binary_type=bytes,
        integer_types=(int,),
        iteritems=lambda d, **kw: iter(d.items(**kw)),
        PY3=True,
    )
    module("ansible", __path__=[])
    module("ansible.errors", **errors)
    module("ansible.module_utils", __path__=[])
    module("ansible.module_utils.six", **six)
    module("ansible.module_utils._text", **text)
    module("ansible.module_utils.common", __path__=[])
    module("ansible.module_utils.common.text", __path__=[])
    module("ansible.module_utils.common.text.converters", **text)


def load(files):
    table, names, problems = {}, [], []
    for i, f in enumerate(files):
        try:
            if f.get("module"):
                if f["root"] not in sys.path:
                    sys.path.insert(0, f["root"])
                mod = importlib.import_module(f["module"])
            else:
                spec = importlib.util.spec_from_file_location("roll_plugin_%d" % i, f["path"])
                mod = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(mod)
            if f["kind"] == "filter":
                holder = getattr(mod, "FilterModule", None)
                found = holder().filters() if holder else {}
            else:
                holder = getattr(mod, "TestModule", None)
                found = holder().tests() if holder else {}
            for name, fn in found.items():
                key = (f["kind"], f["prefix"] + name)
                if key not in table:
                    table[key] = fn
                    names.append(list(key))
        except BaseException as e:  # a plugin's import may raise anything, SystemExit too
            problems.append([f["path"], "%s: %s" % (type(e).__name__, e)])
    return table, names, problems


def plain(o):
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if isinstance(o, bytes):
        return o.decode("utf-8", "replace")
    if hasattr(o, "items"):
        return dict(o.items())
    if hasattr(o, "__iter__"):
        return list(o)
    return str(o)


def answer(obj):
    try:
        text = json.dumps(obj, default=plain)
    except BaseException as e:  # a value JSON cannot hold (a cycle, say)
        text = json.dumps({"error": "%s: %s" % (type(e).__name__, e), "type": type(e).__name__})
    protocol.write(text + "\n")
    protocol.flush()


def main():
    ansible_shim()
    table, names, problems = load(json.loads(sys.stdin.readline()))
    answer({"names": names, "problems": problems})
    for line in sys.stdin:
        req = json.loads(line)
        fn = table.get((req["kind"], req["name"]))
        try:
            out = fn(*req["args"], **req["kwargs"])
            answer({"ok": bool(out) if req["kind"] == "test" else out})
        except BaseException as e:
            answer({"error": str(e) or type(e).__name__, "type": type(e).__name__})


main()
