"""What roll's benchmark scripts share: free loopback ports, the demo app's blue and green
backends, nginx with a private prefix in front of them, and the upstream template."""
import os, socket, subprocess

UPSTREAM_J2 = "upstream web {\n{% for b in backends %}    server {{ b.address }}:{{ b.port }};\n{% endfor %}}\n"

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p

def start_backends(demo, count, procs, env=None):
    """`count` backends, each a blue and a green demo app process on 127.0.0.1 (appended to
    `procs`); returns them in roll.nginx_switch's `backends` form."""
    backends = []
    for i in range(1, count + 1):
        ports = {"blue": free_port(), "green": free_port()}
        for colour, port in ports.items():
            procs.append(subprocess.Popen([demo], stderr=subprocess.DEVNULL, env={
                "PORT": str(port), "BIND": "127.0.0.1", "COLOUR": colour, "RELEASE": "r", **(env or {})}))
        backends.append({"name": f"app{i}", "address": "127.0.0.1", "ports": ports})
    return backends

def start_nginx(ng, backends, connections=1024):
    """nginx with the prefix `ng`, its upstream on every backend's blue port; returns its port."""
    os.makedirs(os.path.join(ng, "logs"))
    proxy = free_port()
    with open(os.path.join(ng, "web-upstream.conf"), "w") as f:
        f.write("upstream web {\n" + "".join(f"    server 127.0.0.1:{b['ports']['blue']};\n" for b in backends) + "}\n")
    with open(os.path.join(ng, "nginx.conf"), "w") as f:
        f.write(f"worker_processes 1;\npid {ng}/nginx.pid;\nerror_log {ng}/logs/error.log;\n"
                f"events {{ worker_connections {connections}; }}\nhttp {{\n  access_log off;\n"
                f"  include {ng}/web-upstream.conf;\n  server {{\n    listen 127.0.0.1:{proxy};\n"
                f"    location / {{ proxy_pass http://web; }}\n  }}\n}}\n")
    subprocess.run(["nginx", "-p", ng, "-c", "nginx.conf"], check=True)
    return proxy
