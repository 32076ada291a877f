# Shared by the scale checks (sourced): process cleanup, logging, waiting for a port.
# Expects ROOT, PORT and ISSUER_PORT to be set by the caller.
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
URL=http://127.0.0.1:$PORT/mcp
ISSUER=http://127.0.0.1:$ISSUER_PORT
WORK=$(mktemp -d /tmp/gatehouse-scale.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "[scale $(date +%H:%M:%S)] $*" >&2; }
# wait_http URL [seconds]: bounded polling until anything answers on URL.
wait_http() {
  for ((i = 0; i < ${2:-60} * 10; i++)); do
    curl -s -o /dev/null --max-time 1 "$1" && return 0
    sleep 0.1
  done
  echo "$1 did not come up" >&2
  return 1
}
# gatehouse_config DB [LINE...]: writes $WORK/gatehouse.toml for a server on $PORT that trusts
# the issuer on $ISSUER_PORT and stores in the SQLite file DB; each LINE is added under
# [database].
gatehouse_config() {
  local db=$1
  shift
  {
    printf '[server]\nlisten = "127.0.0.1:%s"\nresource = "%s"\n' "$PORT" "$URL"
    printf '[[auth.issuers]]\nissuer = "%s"\n' "$ISSUER"
    printf '[database]\nurl = "sqlite://%s"\n' "$db"
    printf '%s\n' "$@"
  } > "$WORK/gatehouse.toml"
}
