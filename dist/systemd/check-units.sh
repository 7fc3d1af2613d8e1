#!/usr/bin/env bash
# Checks the systemd units in this folder; CI runs it from the repo root:
#   bash dist/systemd/check-units.sh
#
# 1. systemd-analyze verify on herald.service and herald.socket: any error
#    (or any warning about these units) fails.
# 2. systemd-analyze security --offline=true on herald.service: fails when
#    the overall exposure level is above MAX_EXPOSURE (default 2.0).
# 3. A few lines the daemon's contract depends on must still be there.
#
# Needs no running systemd (works in containers and CI where PID 1 is not
# systemd) and no installed herald binary.
set -euo pipefail

MAX_EXPOSURE="${MAX_EXPOSURE:-2.0}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
service="$here/herald.service"
socket="$here/herald.socket"

# systemd-analyze (Debian package "systemd") and /bin/kill (ExecReload=; "procps").
missing=()
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
[ -x /bin/kill ] || missing+=(procps)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "== $(systemd-analyze --version | head -n 1)"

# Plain, untranslated, uncoloured output that can be parsed.
export SYSTEMD_COLORS=0 SYSTEMD_PAGER='' SYSTEMD_LOG_COLOR=0 LC_ALL=C.UTF-8

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# verify checks that every Exec*= binary exists and is executable, and
# /usr/local/bin/herald is not installed on a build machine. Copies of the
# units (same file names, so the socket still finds its service) get a stub
# executable in its place; nothing else is changed.
stub="$work/bin/herald"
mkdir -p "$work/bin" "$work/units"
printf '#!/bin/sh\nexit 0\n' >"$stub"
chmod 0755 "$stub"
for unit in "$service" "$socket"; do
    sed "s#/usr/local/bin/herald#$stub#g" "$unit" >"$work/units/$(basename "$unit")"
done

status=0
echo "== systemd-analyze verify herald.service herald.socket"
verify_rc=0
verify_out="$(cd "$work/units" && systemd-analyze verify --man=no ./herald.service ./herald.socket 2>&1)" || verify_rc=$?
if [ -n "$verify_out" ]; then
    # Name the real files, not the temporary copies.
    printf '%s\n' "$verify_out" | sed "s#$work/units/#dist/systemd/#g"
fi
# verify also loads dependencies (multi-user.target, ...) from the host and
# may warn about those; only messages about our units count.
ours="$(printf '%s\n' "$verify_out" | grep -E "herald\.(service|socket)|$work" || true)"
if [ "$verify_rc" -ne 0 ] || [ -n "$ours" ]; then
    echo "FAIL: systemd-analyze verify (exit $verify_rc)"
    status=1
else
    echo "ok: verify"
fi

echo "== systemd-analyze security --offline=true herald.service"
security_rc=0
security_out="$(cd "$here" && systemd-analyze security --offline=true --no-pager ./herald.service 2>&1)" || security_rc=$?
exposure="$(printf '%s\n' "$security_out" |
    sed -n 's/.*Overall exposure level for herald\.service: \([0-9][0-9.]*\).*/\1/p' | tail -n 1)"
if [ -z "$exposure" ]; then
    printf '%s\n' "$security_out"
    echo "FAIL: no 'Overall exposure level' line (systemd-analyze exit $security_rc)"
    status=1
else
    printf '%s\n' "$security_out" | grep -E '^✗' || true
    echo "exposure: $exposure (maximum $MAX_EXPOSURE; 0.0 = fully sandboxed, 10.0 = not at all)"
    if awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e + 0 > m + 0) }'; then
        echo "FAIL: exposure $exposure is above $MAX_EXPOSURE"
        status=1
    else
        echo "ok: security"
    fi
fi

# What the daemon relies on; a missing line is a bug even if systemd accepts the unit.
echo "== contract"
# shellcheck disable=SC2016 # $MAINPID is literal text in the unit
required_service=(
    'Type=notify'
    'NotifyAccess=main'
    'User=herald'
    'ExecStartPre=/usr/local/bin/herald --config /etc/herald/config.toml check --quiet'
    'ExecStart=/usr/local/bin/herald --config /etc/herald/config.toml serve'
    'ExecReload=/bin/kill -HUP $MAINPID'
    'Restart=on-failure'
    'RestartPreventExitStatus=78'
    'WatchdogSec=30s'
    'StateDirectory=herald'
    'ReadWritePaths=/srv/herald/feeds'
    'ReadOnlyPaths=/srv/herald/watch'
    'UMask=0022'
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6'
)
required_socket=(
    'ListenStream=127.0.0.1:8080'
    'FileDescriptorName=http'
)
contract=0
check_lines() {
    local file="$1"
    shift
    local line
    for line in "$@"; do
        if ! grep -qxF -- "$line" "$file"; then
            echo "FAIL: $(basename "$file") lacks the line: $line"
            contract=1
        fi
    done
}
check_lines "$service" "${required_service[@]}"
check_lines "$socket" "${required_socket[@]}"
if [ "$contract" -eq 0 ]; then
    echo "ok: contract"
else
    status=1
fi

if [ "$status" -eq 0 ]; then
    echo "units: all checks passed (exposure $exposure)"
else
    echo "units: FAILED"
fi
exit "$status"
