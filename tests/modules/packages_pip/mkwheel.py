"""Pure-Python wheels for the pip tests, made without network or build tools: rolldemo 1.0
and 2.0 in the directory given (a wheel is a zip of the package, METADATA, WHEEL and RECORD)."""
import base64
import hashlib
import os
import sys
import zipfile


def wheel(name, version, out):
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = '{version}'\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: roll-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    with zipfile.ZipFile(os.path.join(out, f"{name}-{version}-py3-none-any.whl"), "w") as z:
        for path, text in files.items():
            data = text.encode()
            z.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
        record.append(f"{dist}/RECORD,,")
        z.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")


out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for v in ("1.0", "2.0"):
    wheel("rolldemo", v, out)
