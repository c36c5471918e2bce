#!/bin/sh
# An inventory script as a cloud's would be: groups, children, group vars and _meta.hostvars.
case "$1" in
--list)
  cat <<'JSON'
{
  "cache": {"hosts": ["cache1", "cache2"], "vars": {"cache_size": 512}},
  "web": {"hosts": ["web3"], "vars": {"from_script": true}},
  "backend": {"children": ["cache", "db"], "vars": {"tier": "back"}},
  "_meta": {"hostvars": {
    "cache1": {"ansible_host": "10.0.2.1", "zone": "a"},
    "cache2": {"ansible_host": "10.0.2.2", "zone": "b", "labels": ["x", "y"]},
    "web3": {"ansible_host": "10.0.0.3"}
  }}
}
JSON
  ;;
--host) echo '{}' ;;
*) echo "usage: $0 --list | --host H" >&2; exit 2 ;;
esac
