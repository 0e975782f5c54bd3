#!/usr/bin/env bash
# Expose Debian's Ceph Python bindings (rados, rbd) to a Python 3.11 venv,
# without the ~100 other packages in /usr/lib/python3/dist-packages:
#   VENV/ceph-modules/{rados,rbd}.cpython-311-x86_64-linux-gnu.so -> Debian's
#   VENV/lib/python3.11/site-packages/ceph-modules.pth              -> that directory
# Idempotent. Needs: apt-get install python3-rados python3-rbd.
# Usage: tools/link-ceph-modules.sh VENV   (CEPH_PY_DIR overrides the source directory)
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 VENV" >&2
  exit 2
fi
venv=$(cd "$1" 2>/dev/null && pwd) || { echo "$0: no such venv directory: $1" >&2; exit 1; }
src=${CEPH_PY_DIR:-/usr/lib/python3/dist-packages}
site="$venv/lib/python3.11/site-packages"
modules=(rados.cpython-311-x86_64-linux-gnu.so rbd.cpython-311-x86_64-linux-gnu.so)

[ -d "$site" ] || { echo "$0: $site not found: $venv is not a Python 3.11 venv" >&2; exit 1; }

missing=()
for m in "${modules[@]}"; do
  [ -f "$src/$m" ] || missing+=("$src/$m")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "$0: missing Ceph Python modules: ${missing[*]}" >&2
  echo "$0: install them with: apt-get install -y --no-install-recommends python3-rados python3-rbd" >&2
  exit 1
fi

mkdir -p "$venv/ceph-modules"
for m in "${modules[@]}"; do
  ln -sfn "$src/$m" "$venv/ceph-modules/$m"
done
echo "$venv/ceph-modules" > "$site/ceph-modules.pth"
echo "linked rados and rbd into $venv/ceph-modules ($site/ceph-modules.pth)"
