#!/usr/bin/env bash
# Our stack behind a real reverse proxy: nginx. Starts `interop-server` (connect-tokio) on a free port
# of 127.0.0.1 and an nginx of its own (a config in a temporary directory, in the foreground, logs
# there, as the current user) in front of it, with two servers:
#   - HTTP/1.1, `proxy_pass` to a keep-alive upstream, buffering off both ways: Connect and gRPC-Web;
#   - h2c (prior knowledge), `grpc_pass`: gRPC.
# Then `interop-client` calls through nginx (Connect unary POST and GET, streams, gRPC incl. bidi,
# gRPC-Web, errors with details and metadata, deadlines, gzip) and each check prints one line.
# Ends with "nginx: N passed, M failed"; exits non-zero on any failure. Without nginx, it installs
# Debian's nginx (or nginx-light, where there is no plain nginx) when it runs as root with apt-get;
# otherwise it skips (exit 0) with the reason. About 5 s once built. Run from anywhere: `bash interop/nginx.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

find_nginx() { command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true; }
NGINX=$(find_nginx)
if [ -z "$NGINX" ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "nginx: installing Debian's nginx (or nginx-light)"
    # No service started by the package's scripts (policy-rc.d, only if there is none already):
    # this script runs an nginx of its own.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && own_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    { timeout 120 apt-get update -qq &&
      { timeout 300 apt-get install -y -qq nginx || timeout 300 apt-get install -y -qq nginx-light; }
    } >/dev/null 2>&1 || true
    [ "$own_policy" -eq 0 ] || rm -f "$policy"
    NGINX=$(find_nginx)
  fi
  if [ -z "$NGINX" ]; then
    echo "nginx: skipped: no nginx binary, and it could not be installed (needs root and apt-get)"
    exit 0
  fi
fi
version=$("$NGINX" -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
echo "nginx: $NGINX ($version)"

# Our binaries (debug: shares the test build's dependencies), where cargo puts them.
timeout 900 cargo build --quiet -p interop --bins
target_dir=$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target_dir/debug"

tmp=$(mktemp -d)
server_pid=""
nginx_pid=""
cleanup() {
  [ -z "$nginx_pid" ] || kill "$nginx_pid" 2>/dev/null || true
  [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A port nothing listens on (nginx may still lose a race for it: then the start is retried).
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    accepts "$p" || { echo "$p"; return; }
  done
}

: > "$tmp/server.log" # before the server's shell opens it: the loop below reads it at once
"$bin/interop-server" --runtime tokio --port 0 >> "$tmp/server.log" 2>&1 &
server_pid=$!
upstream=""
for _ in $(seq 100); do
  upstream=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/server.log")
  [ -z "$upstream" ] || break
  sleep 0.1
done
if [ -z "$upstream" ]; then
  cat "$tmp/server.log" >&2
  echo "nginx: interop-server did not start" >&2
  exit 1
fi

# `listen ... http2` on a cleartext port is h2c with prior knowledge; nginx 1.25.1 moved the switch
# to its own `http2 on;` directive (the old form still works there, with a warning).
newer_http2=$(printf '%s\n%s\n' 1.25.1 "$version" | sort -V | head -1)
write_config() { # h1_port h2_port
  local h2_listen="listen 127.0.0.1:$2 http2;" h2_switch=""
  if [ "$newer_http2" = 1.25.1 ]; then
    h2_listen="listen 127.0.0.1:$2;"
    h2_switch="http2 on;"
  fi
  local user=""
  # Workers of a root master would switch to `nobody`: keep the current user.
  [ "$(id -u)" -ne 0 ] || user="user $(id -un) $(id -gn);"
  cat > "$tmp/nginx.conf" <<EOF
$user
daemon off;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/error.log info;
events { worker_connections 128; }
http {
    log_format calls '\$request_method \$uri \$status \$server_protocol';
    access_log $tmp/access.log calls;
    client_body_temp_path $tmp/client_body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;

    # One upstream per protocol: with \`keepalive\`, a cached HTTP/1.1 connection of proxy_pass
    # handed to grpc_pass fails the call (502, "no connection data found for keepalive http2
    # connection"): a shared upstream failed the first gRPC call after the Connect calls.
    upstream connect_app {
        server 127.0.0.1:$upstream;
        keepalive 16;
    }
    upstream grpc_app {
        server 127.0.0.1:$upstream;
        keepalive 16;
    }

    # Connect and gRPC-Web over HTTP/1.1.
    server {
        listen 127.0.0.1:$1;
        location / {
            proxy_pass http://connect_app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }
    }

    # gRPC over h2c.
    server {
        $h2_listen
        $h2_switch
        location / {
            grpc_pass grpc://grpc_app;
        }
    }
}
EOF
}

h1="" h2=""
for attempt in 1 2 3 4 5; do
  h1=$(free_port)
  h2=$(free_port)
  [ "$h1" != "$h2" ] || continue
  write_config "$h1" "$h2"
  if ! "$NGINX" -t -q -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/error.log" 2>"$tmp/config-test.log"; then
    cat "$tmp/config-test.log" "$tmp/error.log" 2>/dev/null >&2 || true
    echo "nginx: this nginx rejects the config (above); grpc_pass needs the grpc module, h2c the http_v2 one" >&2
    exit 1
  fi
  "$NGINX" -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/error.log" 2>>"$tmp/error.log" &
  nginx_pid=$!
  for _ in $(seq 100); do
    if accepts "$h1" && accepts "$h2"; then break 2; fi
    kill -0 "$nginx_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$nginx_pid" 2>/dev/null || true
  wait "$nginx_pid" 2>/dev/null || true
  nginx_pid=""
  echo "nginx: start $attempt failed, trying other ports:" >&2
  tail -3 "$tmp/error.log" >&2 || true
done
if [ -z "$nginx_pid" ]; then
  echo "nginx: could not start nginx" >&2
  exit 1
fi
echo "nginx: interop-server on :$upstream; nginx HTTP/1.1 on :$h1 (proxy_pass), h2c on :$h2 (grpc_pass)"

passed=0
failed=0
record() { # PASS|FAIL name detail
  echo "$1 $2: $3"
  if [ "$1" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}
# One client process per protocol; every check it was asked for must print a line.
calls() { # name port protocol http-version checks
  local out rc=0 kind line
  out=$(timeout 120 "$bin/interop-client" --target "http://127.0.0.1:$2" --protocol "$3" \
    --http-version "$4" --codec proto --checks "$5" 2>"$tmp/client.err") || rc=$?
  for kind in ${5//,/ }; do
    line=$(grep "^CHECK $kind " <<<"$out" || true)
    case "$line" in
      "CHECK $kind PASS "*) record PASS "$1 $kind" "${line#CHECK $kind PASS }" ;;
      "CHECK $kind FAIL "*) record FAIL "$1 $kind" "${line#CHECK $kind FAIL }" ;;
      *) record FAIL "$1 $kind" "no result (client exit $rc: $(tail -c 300 "$tmp/client.err"))" ;;
    esac
  done
}

calls "connect h1.1 proxy_pass" "$h1" connect 1.1 \
  unary,unary_get,server_stream,client_stream,error,error_metadata,metadata,deadline,gzip
calls "grpc-web h1.1 proxy_pass" "$h1" grpcweb 1.1 \
  unary,server_stream,client_stream,error,error_metadata,metadata,deadline,gzip
calls "grpc h2c grpc_pass" "$h2" grpc 2 \
  unary,server_stream,client_stream,bidi,error,error_metadata,metadata,deadline,gzip

# nginx's own view: the Connect GET arrived as a GET (not turned into a POST by the client), and
# the gRPC calls went through as HTTP/2.
if grep -q '^GET /interop.v1.InteropService/Unary 200 HTTP/1.1$' "$tmp/access.log"; then
  record PASS "access log" "the Connect unary GET passed as GET, 200"
else
  record FAIL "access log" "no 200 GET of Unary: $(head -c 500 "$tmp/access.log")"
fi
if grep -q '^POST /interop.v1.InteropService/BidiStream 200 HTTP/2.0$' "$tmp/access.log"; then
  record PASS "access log" "the gRPC bidi stream arrived over HTTP/2"
else
  record FAIL "access log" "no HTTP/2 BidiStream: $(head -c 500 "$tmp/access.log")"
fi
# Nothing nginx itself counts as a failure: [crit], [alert], [emerg] (a canceled call is [info]).
if grep -E '\[(crit|alert|emerg)\]' "$tmp/error.log" >&2; then
  record FAIL "error log" "nginx logged the lines above"
else
  record PASS "error log" "no [crit], [alert] or [emerg]"
fi

if [ "$failed" -ne 0 ]; then
  echo "--- nginx error log" >&2
  tail -40 "$tmp/error.log" >&2 || true
  echo "--- interop-server log" >&2
  tail -40 "$tmp/server.log" >&2 || true
fi
echo "nginx: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
