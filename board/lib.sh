# Shared by board/qemu-check, board/qemu-unit and board/musl-check (sourced, not run).
#
# cross_setup TRIPLE: checks (as root: installs) Debian's cross gcc and qemu-user for an ARM
# target, adds the rustup target, and exports what cargo needs to build with that gcc and to
# run the target's test binaries under qemu-user:
#   CC_<triple>, CARGO_TARGET_<TRIPLE>_LINKER   the Debian cross gcc (and OpenSSL's build, which
#                                               is "vendored" for ARM: see Cargo.toml)
#   CARGO_TARGET_<TRIPLE>_RUNNER                qemu-<arch> -L /usr/<gcc triple>
# and sets QEMU, GCC_TRIPLE for the caller.
#
# smoke_test RUNNER...: the binary, started through RUNNER (e.g. `qemu-aarch64 -L ... bin`, or
# just `bin`), imports a 3 MB torrent, serves it, and must answer a Range byte for byte.

# require TOOL PACKAGE: fails, naming the apt package, when TOOL is not on PATH.
require() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "${0##*/}: missing tool $1 (apt package $2); run scripts/test as root to install it" >&2
    exit 1
  }
}

# apt_install_missing TOOL=PACKAGE...: as root, installs the packages of the missing tools.
apt_install_missing() {
  [ "$(id -u)" -eq 0 ] || return 0
  local pair pkgs=()
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null 2>&1 || pkgs+=("${pair#*=}")
  done
  [ ${#pkgs[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y "${pkgs[@]}"
}

add_rust_target() {
  rustup target add "$1" >/dev/null || {
    echo "${0##*/}: rustup could not add the target $1 (rust-std for it)" >&2
    exit 1
  }
}

cross_setup() {
  local target=$1 pkg
  case $target in
    aarch64-unknown-linux-gnu) GCC_TRIPLE=aarch64-linux-gnu; QEMU=qemu-aarch64; pkg=gcc-aarch64-linux-gnu ;;
    armv7-unknown-linux-gnueabihf) GCC_TRIPLE=arm-linux-gnueabihf; QEMU=qemu-arm; pkg=gcc-arm-linux-gnueabihf ;;
    # arm-unknown-linux-gnueabihf (ARMv6) is not here on purpose: Debian's armhf gcc links
    # ARMv7 Thumb-2 startup code (see board/README.md, "ARMv6").
    *) echo "${0##*/}: no cross setup for $target" >&2; exit 2 ;;
  esac
  apt_install_missing "$GCC_TRIPLE-gcc=$pkg" "$QEMU=qemu-user" mktorrent=mktorrent curl=curl
  require "$GCC_TRIPLE-gcc" "$pkg"
  require "$QEMU" qemu-user
  [ -d "/usr/$GCC_TRIPLE/lib" ] || {
    echo "${0##*/}: missing the target's C library in /usr/$GCC_TRIPLE/lib (apt package libc6-dev-${pkg#gcc-}-cross, pulled in by $pkg)" >&2
    exit 1
  }
  add_rust_target "$target"
  local upper lower
  upper=$(tr 'a-z-' 'A-Z_' <<<"$target")
  lower=$(tr '-' '_' <<<"$target")
  export "CC_$lower=$GCC_TRIPLE-gcc" "CARGO_TARGET_${upper}_LINKER=$GCC_TRIPLE-gcc" PKG_CONFIG_ALLOW_CROSS=1
  export "CARGO_TARGET_${upper}_RUNNER=$QEMU -L /usr/$GCC_TRIPLE"
}

smoke_test() {
  require mktorrent mktorrent
  require curl curl
  local url hash
  # Globals, not locals: the EXIT trap runs after this function has returned.
  SMOKE_WORK=$(mktemp -d)
  SMOKE_SERVER=
  trap 'smoke_cleanup' EXIT
  local work=$SMOKE_WORK
  head -c 3000000 /dev/urandom >"$work/movie.mkv"
  mktorrent -l 16 -o "$work/movie.torrent" "$work/movie.mkv" >/dev/null
  export CACHE_DIR=$work/cache HOST=127.0.0.1 PORT=0 LOG_LEVEL=info TORRENT_SOURCES= HTTP_SOURCES= \
    TRACKERS= DHT_BOOTSTRAP= ENABLE_DHT=false ENABLE_LSD=false ENABLE_DLNA=false TORRENT_PORT=0
  "$@" --version
  hash=$("$@" import "$work/movie.torrent" "$work/movie.mkv" | awk '/^imported/ {sub(":", "", $2); print $2}')
  [ -n "$hash" ] || { echo "${0##*/}: import printed no info hash" >&2; exit 1; }
  # $! is the runner's pid (qemu's, or the binary's), so the kill reaches the server.
  "$@" serve 2>"$work/log" &
  SMOKE_SERVER=$!
  for _ in $(seq 300); do grep -q 'Listening on' "$work/log" && break; sleep 0.1; done
  url=$(grep -o 'http://[0-9.:]*' "$work/log" | head -1)
  [ -n "$url" ] || { echo "${0##*/}: the server never listened:" >&2; cat "$work/log" >&2; exit 1; }
  curl -sf --max-time 60 -H 'Range: bytes=1000000-1999999' "$url/stream/proxy/$hash" -o "$work/part"
  cmp "$work/part" <(tail -c +1000001 "$work/movie.mkv" | head -c 1000000)
}

smoke_cleanup() {
  [ -z "${SMOKE_SERVER:-}" ] || kill "$SMOKE_SERVER" 2>/dev/null || true
  [ -z "${SMOKE_WORK:-}" ] || rm -rf "$SMOKE_WORK"
}
