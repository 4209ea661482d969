#!/bin/sh
# Installs streme as a systemd service: the binary, systemd/streme.service, and
# /etc/streme/streme.env from a board profile, then enables and starts it.
#
#   board/install.sh [--profile NAME] [--binary PATH] [--prefix /usr/local] [--root DIR] [--no-start]
#
#   --profile NAME  one of board/*.env without .env (rpi-zero2w, rpi3, rpi4, rpi5, nas-x86_64,
#                   nas-aarch64). Default: guessed from the Debian architecture
#                   (dpkg --print-architecture) and, on a Pi, /proc/device-tree/model.
#   --binary PATH   the streme binary to install. Default: $STREME_BINARY, else ./streme next
#                   to this script, else target/<triple>/release/streme for this architecture,
#                   else target/release/streme.
#   --prefix DIR    /usr/local (default; binary in /usr/local/bin) or /usr.
#   --root DIR      install into DIR instead of / (also $DESTDIR): nothing is started, and the
#                   unit is enabled with `systemctl --root` when systemctl exists.
#   --no-start      install and enable, but do not start.
#
# A changed /etc/streme/streme.env is never overwritten: the profile goes next to it as
# streme.env.new. The profile last installed is kept as streme.env.dist, which is how a file
# the user never edited is told apart from one they did (the same idea as dpkg's conffiles).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
root=${DESTDIR:-}
profile=
binary=${STREME_BINARY:-}
prefix=/usr/local
start=yes

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

while [ $# -gt 0 ]; do
  case $1 in
    --profile) [ $# -ge 2 ] || die "--profile needs a name"; profile=$2; shift 2 ;;
    --binary) [ $# -ge 2 ] || die "--binary needs a path"; binary=$2; shift 2 ;;
    --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix=$2; shift 2 ;;
    --root) [ $# -ge 2 ] || die "--root needs a directory"; root=$2; shift 2 ;;
    --no-start) start=no; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
root=${root%/}
case $prefix in /usr|/usr/local) ;; *) die "--prefix must be /usr or /usr/local, not '$prefix'" ;; esac

command -v dpkg >/dev/null 2>&1 || die "dpkg is missing: this script is for Debian, Raspberry Pi OS and Ubuntu"
arch=$(dpkg --print-architecture)

# The Rust target that builds for this Debian architecture, for finding a local build.
case $arch in
  amd64) triple=x86_64-unknown-linux-gnu ;;
  arm64) triple=aarch64-unknown-linux-gnu ;;
  armhf) triple=armv7-unknown-linux-gnueabihf ;;
  armel) triple=arm-unknown-linux-gnueabihf ;;
  *) triple= ;;
esac

if [ -z "$profile" ]; then
  model=
  if [ -r /proc/device-tree/model ]; then model=$(tr -d '\0' </proc/device-tree/model); fi
  case $model in
    *"Raspberry Pi 5"*) profile=rpi5 ;;
    *"Raspberry Pi 4"*|*"Raspberry Pi Compute Module 4"*) profile=rpi4 ;;
    *"Raspberry Pi 3"*|*"Raspberry Pi 2"*) profile=rpi3 ;;
    # The Zero 2 W and the ARMv6 Zero / Pi 1 share the 512 MB budget.
    *"Raspberry Pi Zero"*|*"Raspberry Pi Model"*) profile=rpi-zero2w ;;
    *)
      case $arch in
        amd64) profile=nas-x86_64 ;;
        arm64) profile=nas-aarch64 ;;
        *) die "cannot guess a profile for '$arch' ($model); pass --profile (see board/README.md)" ;;
      esac ;;
  esac
  say "profile $profile (architecture $arch${model:+, $model})"
fi
env_src=$here/$profile.env
[ -f "$env_src" ] || die "no profile '$profile' (expected $env_src)"

if [ -z "$binary" ]; then
  for candidate in "$here/streme" ${triple:+"$top/target/$triple/release/streme"} "$top/target/release/streme"; do
    if [ -x "$candidate" ]; then binary=$candidate; break; fi
  done
fi
[ -n "$binary" ] && [ -x "$binary" ] \
  || die "no streme binary found; build one (board/build ${triple:-TARGET}) or pass --binary PATH"

unit_src=$top/systemd/streme.service
[ -f "$unit_src" ] || die "missing $unit_src"

bin_dst=$root$prefix/bin/streme
unit_dst=$root/etc/systemd/system/streme.service
etc=$root/etc/streme

install -d -m 0755 "$root$prefix/bin" "$root/etc/systemd/system"
install -m 0755 "$binary" "$bin_dst"
say "installed $bin_dst"

# The unit is ours and always replaced; local changes belong in drop-ins (systemctl edit streme).
sed "s#^ExecStart=/usr/local/bin/streme#ExecStart=$prefix/bin/streme#" "$unit_src" >"$unit_dst.tmp"
chmod 0644 "$unit_dst.tmp"
mv "$unit_dst.tmp" "$unit_dst"
say "installed $unit_dst"

# A 32-bit userland (armhf) on a 64-bit kernel: SystemCallArchitectures=native would refuse
# every syscall (native is arm64 there), so the 32-bit ABI is allowed in a drop-in.
dropin=$root/etc/systemd/system/streme.service.d
if [ "$arch" = armhf ] && [ "$(uname -m)" = aarch64 ] && [ -z "$root" ]; then
  install -d -m 0755 "$dropin"
  printf '[Service]\n# armhf userland on an arm64 kernel (see streme.service)\nSystemCallArchitectures=native arm\n' \
    >"$dropin/arch.conf"
  say "32-bit userland on a 64-bit kernel: installed $dropin/arch.conf"
fi

# /etc/streme is root's: systemd reads EnvironmentFile= before dropping to the dynamic user,
# and HTTP_SOURCES may carry credentials.
install -d -m 0755 "$etc"
if [ ! -e "$etc/streme.env" ]; then
  install -m 0600 "$env_src" "$etc/streme.env"
  say "installed $etc/streme.env from $profile"
elif [ -f "$etc/streme.env.dist" ] && cmp -s "$etc/streme.env" "$etc/streme.env.dist"; then
  install -m 0600 "$env_src" "$etc/streme.env"
  say "updated the unchanged $etc/streme.env from $profile"
elif cmp -s "$etc/streme.env" "$env_src"; then
  : # already this profile
else
  install -m 0600 "$env_src" "$etc/streme.env.new"
  say "kept your changed $etc/streme.env; the $profile profile is in $etc/streme.env.new"
fi
install -m 0600 "$env_src" "$etc/streme.env.dist"

if ! command -v systemctl >/dev/null 2>&1; then
  say "systemctl is missing: enable the service by hand"
elif [ -n "$root" ]; then
  systemctl --root="$root" enable streme.service
  say "enabled in $root (nothing started)"
else
  systemctl daemon-reload
  if [ "$start" = yes ]; then
    systemctl enable --now streme.service
    say "started; see: systemctl status streme; journalctl -u streme -f"
  else
    systemctl enable streme.service
  fi
fi
