#!/usr/bin/env bash
# Regenerate the stored ansible-playbook outputs the roles tests compare roll with, from the
# pinned ansible-core venv (scripts/ansible-venv). The fixture's directory is written as <DIR>.
# Each case directory holds `cases`: one line per stored output, `NAME: ARG;ARG;...` (the
# arguments separated by `;`, so that one may hold spaces). `regenerate.sh DIR` redoes one.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PATH="$("$here/../../scripts/ansible-venv"):$PATH"
export ANSIBLE_STDOUT_CALLBACK=default ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
for dir in "$here"/${1:-*}/; do
  [ -f "$dir/cases" ] || continue
  while IFS=: read -r name args; do
    [ -n "$name" ] || continue
    IFS=';' read -ra argv <<< "${args# }"
    # A case's `env` file (KEY=VALUE lines) is the environment of both ansible and roll.
    (cd "$dir" && env $( [ -f env ] && cat env ) ansible-playbook "${argv[@]}" 2>&1 \
      | sed "s|$(pwd)|<DIR>|g" > "$name.ansible") || true
  done < "$dir/cases"
done
