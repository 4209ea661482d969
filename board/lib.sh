# Shared by board/qemu-check, board/qemu-unit and board/musl-check (sourced, not run).
#
# cross_setup TRIPLE: checks (as root: installs) Debian's cross gcc and qemu-user for an ARM
# target, adds the rustup target, and exports what cargo needs to build with that gcc and to
# run the target's test binaries under qemu-user:
#   CC_<triple>, CARGO_TARGET_<TRIPLE>_LINKER   the Debian cross gcc (for the C parts: libcurl,
#                                               zlib, ring; and the final link)
#   CARGO_TARGET_<TRIPLE>_RUNNER                qemu-<arch> -L /usr/<gcc triple>
# and sets QEMU, GCC_TRIPLE for the caller.
#
# smoke_test RUNNER...: the binary, started through RUNNER (e.g. `qemu-aarch64 -L ... bin`, or
# just `bin`), imports a 3 MB torrent, serves it, and must answer a Range byte for byte. Then
# the HTTPS check (smoke_https): a bare magnet resolved and streamed from a loopback nginx over
# TLS, with a certificate from a scratch CA given through SSL_CERT_FILE: the Range must be byte
# exact; and the same without SSL_CERT_FILE must fail (the scratch CA is not trusted), so the
# check proves that rustls verifies, not only that it connects.

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
  apt_install_missing "$GCC_TRIPLE-gcc=$pkg" "$QEMU=qemu-user" mktorrent=mktorrent curl=curl \
    nginx=nginx-light openssl=openssl python3=python3
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
  SMOKE_NGINX=
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
  kill "$SMOKE_SERVER" 2>/dev/null || true
  wait "$SMOKE_SERVER" 2>/dev/null || true
  SMOKE_SERVER=
  smoke_https "$hash" "$@"
}

# smoke_https HASH RUNNER...: see above; reuses the smoke test's movie.mkv and movie.torrent.
smoke_https() {
  require nginx nginx-light
  require openssl openssl
  require python3 python3
  local hash=$1; shift
  local work=$SMOKE_WORK tls=$SMOKE_WORK/tls port url
  mkdir -p "$tls" "$work/www" "$work/nginx"
  cp "$work/movie.mkv" "$work/www/movie.mkv"
  cp "$work/movie.torrent" "$work/www/${hash^^}.torrent"
  # A scratch CA and a server certificate for 127.0.0.1 signed by it (P-256: quick to make).
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=streme-smoke-ca -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tls/ext"
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
    -days 2 -extfile "$tls/ext" -out "$tls/server.pem" 2>/dev/null
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat >"$work/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 64; }
http {
    log_format tls '\$status "\$request" \$ssl_protocol \$ssl_cipher';
    access_log $work/nginx/access.log tls;
    client_body_temp_path $work/nginx;
    proxy_temp_path $work/nginx;
    fastcgi_temp_path $work/nginx;
    uwsgi_temp_path $work/nginx;
    scgi_temp_path $work/nginx;
    server {
        listen 127.0.0.1:$port ssl;
        ssl_certificate $tls/server.pem;
        ssl_certificate_key $tls/server.key;
        # nginx 1.22's default leaves TLS 1.3 out.
        ssl_protocols TLSv1.2 TLSv1.3;
        root $work/www;
    }
}
CONF
  nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" </dev/null &
  SMOKE_NGINX=$!
  for _ in $(seq 100); do curl -s --cacert "$tls/ca.pem" -o /dev/null "https://127.0.0.1:$port/" && break; sleep 0.1; done
  curl -sf --cacert "$tls/ca.pem" -o /dev/null "https://127.0.0.1:$port/movie.mkv" \
    || { echo "${0##*/}: the loopback nginx does not serve HTTPS:" >&2; cat "$work/nginx/error.log" >&2; exit 1; }

  # Trusted: the torrent and its bytes come over HTTPS only (no peers, P2P gives up at once).
  local part=$work/https-part
  if ! https_stream "$tls/ca.pem" "$part" "$hash" "$port" "$@"; then
    echo "${0##*/}: streaming over HTTPS with the CA in SSL_CERT_FILE failed; streme's log:" >&2
    cat "$work/https-log" >&2
    exit 1
  fi
  cmp "$part" <(tail -c +1000001 "$work/movie.mkv" | head -c 1000000)
  echo "${0##*/}: a bare magnet streamed byte-exact over HTTPS (rustls, CA from SSL_CERT_FILE); nginx saw:"
  sort "$work/nginx/access.log" | uniq -c
  # Untrusted: the system's bundle has no scratch CA, so nothing may be fetched.
  if https_stream "" "$part" "$hash" "$port" "$@"; then
    echo "${0##*/}: streamed over HTTPS from a server whose CA is not trusted: TLS does not verify" >&2
    exit 1
  fi
  if ! grep -qi 'certificate' "$work/https-log"; then
    echo "${0##*/}: the untrusted HTTPS run failed, but not on the certificate; streme's log:" >&2
    cat "$work/https-log" >&2
    exit 1
  fi
  if grep -q 'movie' "$work/nginx/access.log.untrusted" 2>/dev/null; then
    echo "${0##*/}: nginx answered a request from the untrusting streme:" >&2
    cat "$work/nginx/access.log.untrusted" >&2
    exit 1
  fi
  echo "${0##*/}: with the scratch CA untrusted, HTTPS was refused (certificate verification is on)"
}

# https_stream CA_FILE OUT HASH PORT RUNNER...: a fresh cache, a server with only the HTTPS
# sources, a bare magnet added, then the Range into OUT. CA_FILE empty: SSL_CERT_FILE unset.
https_stream() {
  local ca=$1 out=$2 hash=$3 port=$4; shift 4
  local work=$SMOKE_WORK url rc=0
  rm -rf "$work/https-cache" "$out"
  : >"$work/nginx/access.log"
  (
    export CACHE_DIR=$work/https-cache ENABLE_HTTP_FALLBACK=true P2P_TIMEOUT=0 \
      TORRENT_TIMEOUT=15000 HTTP_TIMEOUT=10000 \
      TORRENT_SOURCES="https://127.0.0.1:$port/{HASH}.torrent" \
      HTTP_SOURCES="https://127.0.0.1:$port/{name}"
    if [ -n "$ca" ]; then export SSL_CERT_FILE=$ca; else unset SSL_CERT_FILE SSL_CERT_DIR; fi
    exec "$@" serve
  ) 2>"$work/https-log" &
  SMOKE_SERVER=$!
  for _ in $(seq 300); do grep -q 'Listening on' "$work/https-log" && break; sleep 0.1; done
  url=$(grep -o 'http://[0-9.:]*' "$work/https-log" | head -1)
  [ -n "$url" ] || { echo "${0##*/}: the server never listened:" >&2; cat "$work/https-log" >&2; exit 1; }
  curl -s --max-time 60 -H 'Content-Type: application/json' \
    -d "{\"magnetUri\": \"magnet:?xt=urn:btih:$hash\"}" "$url/api/torrents" >/dev/null || true
  curl -sf --max-time 60 -H 'Range: bytes=1000000-1999999' "$url/stream/proxy/$hash" -o "$out" || rc=1
  kill "$SMOKE_SERVER" 2>/dev/null || true
  wait "$SMOKE_SERVER" 2>/dev/null || true
  SMOKE_SERVER=
  [ -n "$ca" ] || cp "$work/nginx/access.log" "$work/nginx/access.log.untrusted"
  return $rc
}

smoke_cleanup() {
  [ -z "${SMOKE_SERVER:-}" ] || kill "$SMOKE_SERVER" 2>/dev/null || true
  [ -z "${SMOKE_NGINX:-}" ] || kill "$SMOKE_NGINX" 2>/dev/null || true
  [ -z "${SMOKE_WORK:-}" ] || rm -rf "$SMOKE_WORK"
}
