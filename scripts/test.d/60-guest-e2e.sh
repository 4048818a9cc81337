#!/bin/bash
# The KVM guest env in a real VM: Debian's kernel under qemu (TCG) with two
# virtio-serial ports on host sockets, our static C program and static
# guest_vm_power_mgr inside, a host script checking every packet.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/guest-e2e.sh
