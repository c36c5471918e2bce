#!/bin/sh
# Local apt repositories and .deb files for the apt tests, made with dpkg-deb and
# apt-ftparchive on the test host: /srv/roll-a (suite rollstable: rolldemo 1.0),
# /srv/roll-b (suite rollnext: rolldemo 2.0, which recommends rollrec, rollrec and rolldep
# 1.0), and /tmp/roll-debs (rollpkg 1.0, which depends on rolldep, and rollpkg 0.9). With `lists`, both
# repositories are listed in /etc/apt/sources.list.d/roll.list and the cache is updated.
set -eu
mk() { # name version dir [extra control lines]
  d=$(mktemp -d)
  mkdir -p "$d/DEBIAN" "$d/usr/share/doc/$1"
  printf 'Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: roll <roll@example.invalid>\n%bDescription: roll test package\n' \
    "$1" "$2" "${4:-}" > "$d/DEBIAN/control"
  echo "$1 $2" > "$d/usr/share/doc/$1/VERSION"
  mkdir -p "$3"
  dpkg-deb --build --root-owner-group "$d" "$3/$1_$2_all.deb" >/dev/null
  rm -rf "$d"
}
index() { # dir suite
  (cd "$1" && apt-ftparchive packages . > Packages &&
    apt-ftparchive -o APT::FTPArchive::Release::Suite="$2" -o APT::FTPArchive::Release::Origin=roll release . > Release)
}
mk rolldemo 1.0 /srv/roll-a
index /srv/roll-a rollstable
mk rolldemo 2.0 /srv/roll-b 'Recommends: rollrec\n'
mk rollrec 1.0 /srv/roll-b
mk rolldep 1.0 /srv/roll-b
index /srv/roll-b rollnext
mk rollpkg 1.0 /tmp/roll-debs 'Depends: rolldep\n'
mk rollpkg 0.9 /tmp/roll-debs
if [ "${1:-}" = lists ]; then
  printf 'deb [trusted=yes] file:/srv/roll-a ./\ndeb [trusted=yes] file:/srv/roll-b ./\n' > /etc/apt/sources.list.d/roll.list
  apt-get update -q >/dev/null
fi
