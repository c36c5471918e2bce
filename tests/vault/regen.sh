#!/usr/bin/env bash
# Regenerates the vault fixtures with ansible-vault from the pinned ansible-core venv
# (scripts/ansible-venv). ansible-vault salts every encryption at random: the ciphertexts
# change on every run, the plaintexts (and so the tests) do not.
set -euo pipefail
cd "$(dirname "$0")"
PATH="$(../../scripts/ansible-venv):$PATH"
# A whole encrypted vars file, format 1.1 (no vault id).
printf 'db_password: "db-secret-Xw41r"\napi_token: tok-Vault-77aa\n' > vars-plain.yml
cp vars-plain.yml vars.yml
ansible-vault encrypt --vault-password-file pass-default vars.yml
rm vars-plain.yml
# Another with a vault id (format 1.2).
printf 'prod_db_password: prod-db-Rt62w\n' > vars-prod.yml
ansible-vault encrypt --vault-id prod@pass-prod vars-prod.yml
# `!vault` scalars, with and without a vault id.
{
  printf 'plain_value: visible\n'
  ansible-vault encrypt_string --vault-password-file pass-default 'inline-secret-K2p9' --name inline_secret 2>/dev/null
  ansible-vault encrypt_string --vault-id prod@pass-prod 'prod-inline-Z5t1' --name prod_secret 2>/dev/null
  printf 'multi_line: !vault |\n'
  ansible-vault encrypt_string --vault-password-file pass-default "$(printf 'line-one-abc\nline-two-def')" 2>/dev/null | tail -n +2
} > inline.yml
# A file for `copy` sources.
printf 'key-file-contents-H8d3\n' > secret.txt
ansible-vault encrypt --vault-password-file pass-default secret.txt
