#!/bin/sh
# Install the real servers the tests use (Debian packages), when running as root with apt.
# Idempotent: does nothing when everything is present. Otherwise says what is missing;
# the tests that need a missing binary skip with that reason.
set -eu
# gcc, libc6-dev and python3-dev build the optional C timer cores (meterhub._speedups).
PKGS="prometheus prometheus-node-exporter prometheus-pushgateway prometheus-alertmanager victoria-metrics postgresql redis-server wrk curl gcc libc6-dev python3-dev"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && { echo "system-deps: all present"; exit 0; }
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing:$missing (not root with apt: the tests needing them will skip)"
  exit 0
fi
# Keep the packages' maintainer scripts from starting services on their standard ports.
created=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; created=1
fi
echo "system-deps: installing$missing"
rc=0
DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null || rc=$?
[ $rc = 0 ] && { DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=120 \
  install --no-install-recommends $missing >/dev/null || rc=$?; }
[ $created = 1 ] && rm -f /usr/sbin/policy-rc.d
# Debian starts these on install where an init system runs; the tests start their own.
for s in prometheus prometheus-node-exporter prometheus-pushgateway prometheus-alertmanager victoria-metrics postgresql redis-server; do
  command -v service >/dev/null 2>&1 && service "$s" stop >/dev/null 2>&1 || true
done
exit $rc
