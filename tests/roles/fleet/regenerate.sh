#!/usr/bin/env bash
# The PLAY RECAP ansible-playbook prints for site.yml on the first and the second run, with the
# hosts of the test's loopback fleet run locally (tests/suite/roles.rs runs roll over the fleet).
set -euo pipefail
cd "$(dirname "$0")"
PATH="$(../../../scripts/ansible-venv):$PATH"
base=$(mktemp -d)
trap 'rm -rf "$base"' EXIT
for run in 1 2; do
  ANSIBLE_STDOUT_CALLBACK=default ansible-playbook -i hosts.local site.yml -e "base=$base" -f 1 \
    | sed -n '/PLAY RECAP/,$p' | grep ' : ok=' | sed 's/ *$//' > "recap-run$run.ansible"
done
