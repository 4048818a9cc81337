#!/bin/bash
# The KVM guest env in a real VM: Debian's kernel under qemu (TCG) with
# virtio-serial ports on host sockets, our static C program and static
# guest_vm_power_mgr inside. Ports 0-3: a host script checking every packet
# (scripts/guest/host.py); ports 4-6, in the same boot: our vm_power_mgr
# daemon on a generated sysfs tree and the libvirt test driver, checked
# through the guest's answers, `vm_power_mgr ctl`, the tree and the restore
# at SIGTERM (scripts/guest/monitor-e2e.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/guest-e2e.sh
