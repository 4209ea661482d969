#!/bin/sh
# Removes what board/install.sh installed: stops and disables the service, removes the unit,
# its drop-ins and the binary. /etc/streme and the cache stay unless --purge is given.
#
#   board/uninstall.sh [--root DIR] [--purge]
#
#   --root DIR  uninstall from DIR instead of / (also $DESTDIR); nothing is stopped.
#   --purge     also remove /etc/streme, the cache (/var/cache/streme) and the state
#               (/var/lib/streme), including DynamicUser's /var/{cache,lib}/private/streme.
set -eu

root=${DESTDIR:-}
purge=no

die() { echo "uninstall.sh: $*" >&2; exit 1; }
say() { echo "uninstall.sh: $*"; }

while [ $# -gt 0 ]; do
  case $1 in
    --root) [ $# -ge 2 ] || die "--root needs a directory"; root=$2; shift 2 ;;
    --purge) purge=yes; shift ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
root=${root%/}

if command -v systemctl >/dev/null 2>&1; then
  if [ -n "$root" ]; then
    systemctl --root="$root" disable streme.service 2>/dev/null || true
  else
    systemctl disable --now streme.service 2>/dev/null || true
  fi
fi

rm -f "$root/etc/systemd/system/streme.service"
rm -rf "$root/etc/systemd/system/streme.service.d"
for bin in "$root/usr/local/bin/streme" "$root/usr/bin/streme"; do
  if [ -e "$bin" ]; then rm -f "$bin"; say "removed $bin"; fi
done
if [ -z "$root" ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload
fi

if [ "$purge" = yes ]; then
  rm -rf "$root/etc/streme" \
    "$root/var/cache/streme" "$root/var/cache/private/streme" \
    "$root/var/lib/streme" "$root/var/lib/private/streme"
  say "purged the settings, the cache and the state"
else
  say "kept $root/etc/streme and the cache (--purge removes them)"
fi
