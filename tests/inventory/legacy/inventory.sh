#!/bin/sh
# No _meta: each host's variables come from `--host H`, and an old-style group that is a bare list.
case "$1" in
--list) echo '{"app": ["app1", "app2"], "lb": {"hosts": ["lb1"]}}' ;;
--host)
  case "$2" in
  app1) echo '{"ansible_host": "10.1.0.1", "weight": 3}' ;;
  lb1) echo '{"ansible_host": "10.1.0.9"}' ;;
  *) echo '' ;;
  esac ;;
esac
