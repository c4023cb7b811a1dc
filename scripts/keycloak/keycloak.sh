#!/usr/bin/env bash
# Real Keycloak for FlowForge's integration tests, on loopback only (scripts/services sources it).
#
# Source it (scripts/services may) and call the functions, or run it directly:
#   scripts/keycloak/keycloak.sh [install|start|stop|status|env]
#
#   keycloak_install  fetch keycloak-quarkus-dist with Maven (cached in dl/) and unpack it
#   keycloak_start    install if needed, start `kc.sh start-dev` in the background, import the
#                     realm file, wait (bounded) until /health/ready is UP and the realm answers
#   keycloak_stop     stop the server this script started (pid file), TERM then KILL
#   keycloak_status   one line, up/down; returns 1 when down
#   keycloak_env      the KEYCLOAK_* settings for the app and the tests
#
# Everything lives in <repo>/.services/keycloak/ (git-ignored): dl/ (the tar.gz), keycloak-<v>/
# (the server; its dev H2 database in data/h2), log/keycloak.log, keycloak.pid, realm.sha256.
#
# Ports (127.0.0.1 only): HTTP 18080, management (health) 19000 — not Keycloak's default 9000,
# which ClickHouse's native port already uses on these machines.
#
# The realm file (scripts/keycloak/realm-flowforge.json) is imported at start with
# --import-realm, whose strategy is IGNORE_EXISTING: an existing realm is never updated. So when
# the file's sha256 differs from the one recorded at the last successful start, the dev H2
# database is deleted first and everything (master realm, admin, flowforge realm, fresh keys) is
# recreated. KEYCLOAK_RESET=1 forces that.
#
# TEST-ONLY credentials: the bootstrap admin admin/admin-password (master realm, admin-cli) and
# every secret and password in the realm file are public. Never expose this server.
#
# Settings (environment):
#   KEYCLOAK_VERSION (26.7.3)  KEYCLOAK_PORT (18080)  KEYCLOAK_MANAGEMENT_PORT (19000)
#   KEYCLOAK_WAIT_SECS (240: the first start rebuilds the server, ~30-40 s CPU)
#   KEYCLOAK_JAVA_HOME (newest JDK >= 17 under /usr/lib/jvm)
#   KEYCLOAK_HEAP ("-Xms64m -Xmx320m")  KEYCLOAK_JAVA_OPTS_APPEND ("-XX:TieredStopAtLevel=1")
#   KEYCLOAK_REALM_FILE  KEYCLOAK_STATE_DIR (<SERVICES_STATE_DIR or repo/.services>/keycloak)
#   KEYCLOAK_ADMIN_USER (admin)  KEYCLOAK_ADMIN_PASSWORD (admin-password)  KEYCLOAK_RESET (0)

KC_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KC_VERSION="${KEYCLOAK_VERSION:-26.7.3}"
KC_STATE="${KEYCLOAK_STATE_DIR:-${SERVICES_STATE_DIR:-$KC_REPO_ROOT/.services}/keycloak}"
KC_HOME="$KC_STATE/keycloak-$KC_VERSION"
KC_DL="$KC_STATE/dl"
KC_TARBALL="$KC_DL/keycloak-quarkus-dist-$KC_VERSION.tar.gz"
KC_LOG="$KC_STATE/log/keycloak.log"
KC_PID_FILE="$KC_STATE/keycloak.pid"
KC_REALM_SUM="$KC_STATE/realm.sha256"
KC_REALM_FILE="${KEYCLOAK_REALM_FILE:-$KC_REPO_ROOT/scripts/keycloak/realm-flowforge.json}"
KC_REALM="${KEYCLOAK_REALM:-flowforge}"
KC_PORT="${KEYCLOAK_PORT:-18080}"
KC_MGMT_PORT="${KEYCLOAK_MANAGEMENT_PORT:-19000}"
KC_URL="http://127.0.0.1:$KC_PORT"
KC_WAIT="${KEYCLOAK_WAIT_SECS:-240}"
KC_STOP_WAIT="${KEYCLOAK_STOP_WAIT_SECS:-30}"

_kc_say() { printf 'keycloak: %s\n' "$*"; }
_kc_err() { printf 'keycloak: error: %s\n' "$*" >&2; }

# JAVA_HOME to run Keycloak with: KEYCLOAK_JAVA_HOME, else the newest JDK >= 17 under /usr/lib/jvm
# (Keycloak 26.7 supports OpenJDK 17, 21 and 25 and recommends the newest), else `java` on PATH.
keycloak_java_home() {
  if [ -n "${KEYCLOAK_JAVA_HOME:-}" ]; then printf '%s\n' "$KEYCLOAK_JAVA_HOME"; return; fi
  local d v best="" bestv=0
  for d in /usr/lib/jvm/*; do
    if [ ! -d "$d" ] || [ -L "$d" ] || [ ! -x "$d/bin/java" ] || [ ! -f "$d/release" ]; then continue; fi
    v="$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$d/release")"
    if [ -n "$v" ] && [ "$v" -ge 17 ] && [ "$v" -gt "$bestv" ]; then best="$d"; bestv="$v"; fi
  done
  if [ -n "$best" ]; then printf '%s\n' "$best"; return; fi
  if command -v java >/dev/null; then
    java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.home = //p'
    return
  fi
  _kc_err "no JDK >= 17 found (set KEYCLOAK_JAVA_HOME)"
  return 1
}

_kc_java_major() { sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$1/release" 2>/dev/null; }

# ---------------------------------------------------------------- install
keycloak_install() {
  if [ -x "$KC_HOME/bin/kc.sh" ] && grep -qx "Keycloak - Version $KC_VERSION" "$KC_HOME/version.txt" 2>/dev/null; then
    return 0
  fi
  mkdir -p "$KC_DL" || return 1
  if [ ! -s "$KC_TARBALL" ]; then
    command -v mvn >/dev/null || { _kc_err "mvn not found (needed to fetch keycloak-quarkus-dist)"; return 1; }
    _kc_say "fetching org.keycloak:keycloak-quarkus-dist:$KC_VERSION:tar.gz with Maven (~176 MB)"
    # -C: fail on a checksum mismatch (Maven 3.8's default policy only warns)
    # The plugin by exact version: `dependency:copy` alone resolves the newest one Maven Central lists.
    (cd "$KC_DL" && mvn -q -B -C org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
      "-Dartifact=org.keycloak:keycloak-quarkus-dist:$KC_VERSION:tar.gz" \
      "-DoutputDirectory=$KC_DL") >>"$KC_STATE/install.log" 2>&1 ||
      { _kc_err "mvn dependency:copy failed (see $KC_STATE/install.log)"; return 1; }
    [ -s "$KC_TARBALL" ] || { _kc_err "mvn ran but $KC_TARBALL is missing"; return 1; }
  fi
  gzip -t "$KC_TARBALL" 2>/dev/null || { _kc_err "$KC_TARBALL is corrupt; delete it and retry"; return 1; }
  local tmp="$KC_STATE/.unpack.$$"
  rm -rf "$tmp" && mkdir -p "$tmp" || return 1
  tar -xzf "$KC_TARBALL" -C "$tmp" || { rm -rf "$tmp"; _kc_err "unpacking $KC_TARBALL failed"; return 1; }
  [ -x "$tmp/keycloak-$KC_VERSION/bin/kc.sh" ] || { rm -rf "$tmp"; _kc_err "unexpected archive layout"; return 1; }
  rm -rf "$KC_HOME"
  mv "$tmp/keycloak-$KC_VERSION" "$KC_HOME" && rm -rf "$tmp" || return 1
  rm -f "$KC_REALM_SUM"
  _kc_say "installed $KC_VERSION in ${KC_HOME#"$KC_REPO_ROOT"/}"
}

# ---------------------------------------------------------------- process helpers
# The server is the java process whose command line carries -Dkc.home.dir=$KC_HOME/bin/.. (kc.sh
# adds it). Its pid changes once on a first start: kc.sh runs java to rebuild, then execs a
# new java in its own pid. So the pid file is written once the server is ready.
_kc_marker() { printf -- '-Dkc.home.dir=%s/bin/..' "$KC_HOME"; }

_kc_is_ours() { # <pid>
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$(_kc_marker) "
}

_kc_find_java() { # pid of the java server of this installation, if one runs
  local pid
  for pid in $(pgrep -f -- "$(_kc_marker)" 2>/dev/null); do
    if tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -1 | grep -q '/java$'; then
      printf '%s\n' "$pid"
      return 0
    fi
  done
  return 1
}

_kc_pid() { # pid of our server, from the pid file or by its command line
  local pid=""
  [ -s "$KC_PID_FILE" ] && pid="$(tr -dc '0-9' <"$KC_PID_FILE")"
  if _kc_is_ours "$pid"; then printf '%s\n' "$pid"; return 0; fi
  _kc_find_java
}

_kc_ready() {
  curl -fsS -m 2 "http://127.0.0.1:$KC_MGMT_PORT/health/ready" 2>/dev/null | grep -q '"UP"' &&
    curl -fsS -m 2 -o /dev/null "$KC_URL/realms/$KC_REALM/.well-known/openid-configuration" 2>/dev/null
}

_kc_port_busy() { # <port>: something listens on 127.0.0.1:<port> or on all addresses
  ss -Hltn "( sport = :$1 )" 2>/dev/null | grep -q .
}

# ---------------------------------------------------------------- start
keycloak_start() {
  local pid t0=$SECONDS
  if _kc_ready && pid="$(_kc_pid)" && [ -f "$KC_REALM_SUM" ] &&
    [ "$(cat "$KC_REALM_SUM")" != "$(sha256sum "$KC_REALM_FILE" | cut -d' ' -f1)" ]; then
    # Ours, but serving a realm file that has changed since: restart on a fresh database.
    _kc_say "the realm file changed since pid $pid started: restarting it"
    keycloak_stop || return 1
  fi
  if _kc_ready; then
    if pid="$(_kc_pid)"; then
      _kc_say "already running on $KC_URL (pid $pid)"
    else
      _kc_say "already answering on $KC_URL (not started by this script; used as is)"
    fi
    return 0
  fi
  if pid="$(_kc_pid)"; then
    _kc_say "pid $pid is starting; waiting"
  else
    local port
    for port in "$KC_PORT" "$KC_MGMT_PORT"; do
      if _kc_port_busy "$port"; then
        _kc_err "port $port is in use by something else: $(ss -Hltnp "( sport = :$port )" | head -1)"
        return 1
      fi
    done
    keycloak_install || return 1
    local jh jv
    jh="$(keycloak_java_home)" || return 1
    jv="$(_kc_java_major "$jh")"
    if [ -n "$jv" ] && [ "$jv" -lt 17 ]; then _kc_err "$jh is Java $jv; Keycloak needs 17+"; return 1; fi
    [ -f "$KC_REALM_FILE" ] || { _kc_err "realm file $KC_REALM_FILE not found"; return 1; }

    # Import is IGNORE_EXISTING: a changed realm file needs a fresh database.
    local sum
    sum="$(sha256sum "$KC_REALM_FILE" | cut -d' ' -f1)"
    if [ "${KEYCLOAK_RESET:-0}" = 1 ] || [ ! -f "$KC_REALM_SUM" ] || [ "$(cat "$KC_REALM_SUM")" != "$sum" ]; then
      if [ -d "$KC_HOME/data/h2" ]; then _kc_say "realm file changed (or reset asked): deleting the dev database"; fi
      rm -rf "$KC_HOME/data/h2" "$KC_HOME/data/transaction-logs" "$KC_HOME/data/import"
      rm -f "$KC_REALM_SUM"
    fi
    mkdir -p "$KC_HOME/data/import" "$(dirname "$KC_LOG")"
    cp "$KC_REALM_FILE" "$KC_HOME/data/import/realm-$KC_REALM.json"

    if [ -f "$KC_LOG" ] && [ "$(stat -c %s "$KC_LOG")" -gt 10485760 ]; then mv -f "$KC_LOG" "$KC_LOG.1"; fi
    printf '\n===== %s keycloak_start (JAVA_HOME=%s)\n' "$(date -Is)" "$jh" >>"$KC_LOG"
    # setsid: its own session, so a Ctrl-C or process-group kill aimed at the caller does not reach it
    (
      cd "$KC_HOME" || exit 1
      export JAVA_HOME="$jh"
      export KC_BOOTSTRAP_ADMIN_USERNAME="${KEYCLOAK_ADMIN_USER:-admin}"
      export KC_BOOTSTRAP_ADMIN_PASSWORD="${KEYCLOAK_ADMIN_PASSWORD:-admin-password}"
      export KC_HEALTH_ENABLED=true
      export JAVA_OPTS_KC_HEAP="${KEYCLOAK_HEAP:--Xms64m -Xmx320m}"
      export JAVA_OPTS_APPEND="${KEYCLOAK_JAVA_OPTS_APPEND--XX:TieredStopAtLevel=1}"
      exec setsid bin/kc.sh start-dev \
        --http-host=127.0.0.1 --http-port="$KC_PORT" \
        --http-management-host=127.0.0.1 --http-management-port="$KC_MGMT_PORT" \
        --hostname="$KC_URL" \
        --cache=local \
        --import-realm
    ) </dev/null >>"$KC_LOG" 2>&1 &
    _kc_say "starting $KC_VERSION (Java ${jv:-?}) on $KC_URL, management 127.0.0.1:$KC_MGMT_PORT; log ${KC_LOG#"$KC_REPO_ROOT"/}"
  fi

  local deadline=$((SECONDS + KC_WAIT)) seen=0
  until _kc_ready; do
    if pid="$(_kc_find_java)"; then
      seen=1
    elif [ "$seen" = 1 ] || [ $((SECONDS - t0)) -gt 15 ]; then
      # java gone (it exits and is replaced once during a rebuild: give it a moment)
      sleep 1
      if ! _kc_find_java >/dev/null; then
        _kc_err "the server exited during start-up; last log lines:"
        tail -n 25 "$KC_LOG" >&2
        return 1
      fi
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      _kc_err "not ready within ${KC_WAIT}s; stopping it. Last log lines:"
      tail -n 25 "$KC_LOG" >&2
      keycloak_stop >/dev/null 2>&1 || true
      return 1
    fi
    sleep 0.5
  done
  pid="$(_kc_find_java)" && printf '%s\n' "$pid" >"$KC_PID_FILE"
  sha256sum "$KC_REALM_FILE" | cut -d' ' -f1 >"$KC_REALM_SUM"
  _kc_say "ready in $((SECONDS - t0))s on $KC_URL (pid ${pid:-?}; realm $KC_REALM; admin ${KEYCLOAK_ADMIN_USER:-admin})"
}

# ---------------------------------------------------------------- stop / status
keycloak_stop() {
  local pid deadline
  if ! pid="$(_kc_pid)"; then
    rm -f "$KC_PID_FILE"
    if _kc_ready; then _kc_say "answering on $KC_URL but not started by this script; left alone"; else _kc_say "not running"; fi
    return 0
  fi
  # SIGTERM to java: Quarkus shuts down cleanly (~2-4 s); kc.sh then exits with it
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + KC_STOP_WAIT))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      _kc_err "pid $pid did not exit within ${KC_STOP_WAIT}s after SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  rm -f "$KC_PID_FILE"
  _kc_say "stopped (pid $pid)"
}

keycloak_status() {
  local pid="" rss=""
  pid="$(_kc_pid)" || pid=""
  [ -n "$pid" ] && rss="$(awk '/^VmRSS/ { printf "%d MB", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null)"
  if _kc_ready; then
    local who="not started by this script"
    [ -n "$pid" ] && who="pid $pid, $rss"
    printf '%-11s %-5s %s\n' keycloak up "$KC_URL realm $KC_REALM, management :$KC_MGMT_PORT ($who)"
    return 0
  fi
  if [ -n "$pid" ]; then
    printf '%-11s %-5s %s\n' keycloak down "$KC_URL (pid $pid alive but not ready: starting?)"
  else
    printf '%-11s %-5s %s\n' keycloak down "$KC_URL"
  fi
  return 1
}

keycloak_env() {
  cat <<EOF
KEYCLOAK_URL=$KC_URL
KEYCLOAK_REALM=$KC_REALM
KEYCLOAK_CLIENT_ID=flowforge-api
EOF
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -uo pipefail
  case "${1:-status}" in
    install) keycloak_install ;;
    start) keycloak_start ;;
    stop) keycloak_stop ;;
    status) keycloak_status ;;
    env) keycloak_env ;;
    *) echo "usage: $0 [install|start|stop|status|env]" >&2; exit 2 ;;
  esac
fi
