#!/bin/sh
# Prints its arguments one per line (and, given `pwd`, where it runs); given `exit=N`, exits N.
for a in "$@"; do
  echo "arg: $a"
  case $a in
    pwd) echo "pwd: $(pwd)" ;;
    exit=*) echo "to stderr" >&2; exit "${a#exit=}" ;;
  esac
done
