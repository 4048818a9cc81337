#!/bin/bash
# Fleet deployment files, checked without a cluster or a container
# runtime: deploy/k8s/*.yaml against the Kubernetes API schema
# (kubernetes-validate --strict: unknown fields are errors too) and
# deploy/container/Containerfile with hadolint, both pinned from PyPI by
# scripts/fleet-tools.sh; then what the schema cannot know: the DaemonSet
# is not privileged, drops all capabilities and adds only those the
# hardened unit keeps, mounts the host paths the monitor uses, and the
# Containerfile installs this project's packages on Debian 12 and runs
# options the monitor has.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$(bash scripts/fleet-tools.sh)
pass=0 fail=0
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then echo "PASS $what"; pass=$((pass + 1)); else echo "FAIL $what"; fail=$((fail + 1)); fi
}
DS=deploy/k8s/daemonset.yaml CF=deploy/container/Containerfile
K8S=$("$BIN/kubernetes-validate" --version)
check "kubernetes-validate --strict (Kubernetes $K8S schema): deploy/k8s/*.yaml" \
  "$BIN/kubernetes-validate" --strict --quiet deploy/k8s/*.yaml
check "hadolint $("$BIN/hadolint" --version | awk '{ print $NF }'): $CF" "$BIN/hadolint" "$CF"

# the DaemonSet's privileges, read with the venv's PyYAML (a dependency of
# kubernetes-validate)
privileges() {
  "$BIN/python" - "$DS" monitor/dist/vm_power_mgr.service <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
ds = next(d for d in docs if d["kind"] == "DaemonSet")
pod = ds["spec"]["template"]["spec"]
unit = open(sys.argv[2]).read()
bounding = next(l for l in unit.splitlines() if l.startswith("CapabilityBoundingSet="))
allowed = {c.removeprefix("CAP_") for c in bounding.split("=", 1)[1].split()}
errors = []
mounts = set()
for c in pod.get("initContainers", []) + pod["containers"]:
    sc = c["securityContext"]
    if sc.get("privileged") or sc.get("allowPrivilegeEscalation", True):
        errors.append(f"{c['name']}: privileged or may escalate")
    caps = sc["capabilities"]
    if caps.get("drop") != ["ALL"]:
        errors.append(f"{c['name']}: does not drop ALL capabilities")
    extra = set(caps.get("add", [])) - allowed
    if extra:
        errors.append(f"{c['name']}: capabilities beyond the unit's bounding set: {sorted(extra)}")
    if not sc.get("readOnlyRootFilesystem"):
        errors.append(f"{c['name']}: writable root filesystem")
    if "limits" not in c.get("resources", {}):
        errors.append(f"{c['name']}: no resource limits")
    mounts |= {m["mountPath"] for m in c["volumeMounts"]}
for path in ["/sys/devices/system/cpu", "/run/libvirt", "/run/powermonitor", "/run/rte_power", "/run/vm_power_mgr"]:
    if path not in mounts:
        errors.append(f"host path {path} not mounted")
ann = ds["spec"]["template"]["metadata"]["annotations"]
if ann.get("prometheus.io/scrape") != "true" or not ann.get("prometheus.io/port"):
    errors.append("no Prometheus scrape annotations")
for e in errors:
    print("  " + e)
caps = sorted(set().union(*(set(c["securityContext"]["capabilities"].get("add", [])) for c in pod["containers"])))
print(f"  capabilities: {' '.join(caps)} (unit bounding set: {' '.join(sorted(allowed))}); "
      f"hostPID {pod.get('hostPID', False)}, hostNetwork {pod.get('hostNetwork', False)}")
sys.exit(1 if errors else 0)
PY
}
check "DaemonSet: unprivileged, drop ALL, only the unit's capabilities, host paths, limits, scrape annotations" privileges
check "Containerfile: Debian 12 base, installs the vm-power-mgr package, runs the monitor in daemon mode" \
  bash -c "grep -q '^FROM debian:bookworm' $CF && grep -q 'apt-get install .*/tmp/deb/\*.deb' $CF &&
    grep -q 'vm-power-mgr_\*.deb' $CF && grep -q '^ENTRYPOINT \[\"/usr/bin/vm_power_mgr\", \"--daemon\"' $CF"
# the programs accept what the image and the DaemonSet run: every option of
# the ENTRYPOINT and of the DaemonSet's args is in vm_power_mgr's usage, `restore` in rte-pm's
cargo build --release --locked -q -p vm-power-mgr -p rte-pm --bin vm_power_mgr --bin rte-pm
options_known() {
  local usage opt missing=""
  usage=$(target/release/vm_power_mgr --help 2>&1)
  for opt in $( { sed -n '/^ENTRYPOINT/,/\]$/p' "$CF"; grep '^ *args:' deploy/k8s/daemonset.yaml; } |
      grep -o '"--[a-z-]*"' | tr -d '"'); do
    grep -q -- "$opt " <<<"$usage" || missing+=" $opt"
  done
  grep -q '^  restore ' <(target/release/rte-pm --help 2>&1) || missing+=" rte-pm:restore"
  [ -z "$missing" ] || echo "  unknown:$missing"
  [ -z "$missing" ]
}
check "the ENTRYPOINT's and DaemonSet's options and the init container's 'rte-pm restore' exist in the programs' usage" options_known
# the Prometheus examples (deploy/prometheus, deploy/grafana): the alert
# rules load and pass their unit tests (promtool from Debian's prometheus
# package), every PromQL expression of the dashboard parses, and every
# metric the rules and the dashboard name is in a real monitor's
# exposition (--simulate --daemon, scraped on a UNIX socket, energy on).
RULES=deploy/prometheus/rte-power.rules.yml DASH=deploy/grafana/rte-power-dashboard.json
check "promtool check rules: $RULES" promtool check rules "$RULES"
check "promtool test rules: each alert fires on its series and not on the others" \
  promtool test rules deploy/prometheus/rte-power.rules.test.yml
dashboard_parses() {
  local rules
  rules=$(mktemp --suffix=.yml)
  "$BIN/python" - "$DASH" >"$rules" <<'PY' || { rm -f "$rules"; return 1; }
import json, sys, yaml
d = json.load(open(sys.argv[1]))
exprs = [t["expr"] for p in d["panels"] for t in p["targets"]]
assert exprs and all(p.get("datasource") for p in d["panels"]), "panels without queries or datasource"
rules = [{"record": f"dashboard:panel{i}", "expr": e.replace("$__rate_interval", "5m").replace("$instance", ".*")}
         for i, e in enumerate(exprs)]
print(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
PY
  promtool check rules "$rules" >/dev/null
  local rc=$?
  rm -f "$rules"
  return $rc
}
check "every PromQL expression of $DASH parses (promtool)" dashboard_parses
names_exposed() {
  local d rc=0 exposed used missing=""
  d=$(mktemp -d)
  target/release/vm_power_mgr --simulate --daemon -q --sim-dir "$d/sim" --ctl-socket "$d/ctl.sock" \
    --metrics "unix:$d/metrics.sock" &
  local pid=$!
  for _ in $(seq 100); do [ -S "$d/metrics.sock" ] && break; sleep 0.1; done
  # the energy families have series once the sampler has sampled the simulated
  # host's powercap tree twice (one interval)
  local text=""
  for _ in $(seq 100); do
    text=$(curl -sf --unix-socket "$d/metrics.sock" http://localhost/metrics) || true
    grep -q '^vm_power_mgr_vm_power_watts{' <<<"$text" && break
    sleep 0.1
  done
  exposed=$(echo "$text" |
    awk '$1 == "#" && $2 == "TYPE" { n = $3; t = $4
      if (t == "counter") print n "_total"; else if (t == "histogram") { print n "_bucket"; print n "_sum"; print n "_count" }
      else print n }') || rc=1
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$d"
  [ $rc = 0 ] && [ -n "$exposed" ] || { echo "  no exposition from the monitor"; return 1; }
  used=$(grep -ohE '\b(vm_power_mgr|rte_power|process)_[a-z0-9_]*[a-z0-9]' "$RULES" "$DASH" | sort -u)
  for n in $used; do grep -qx "$n" <<<"$exposed" || missing+=" $n"; done
  echo "  $(wc -w <<<"$used") metric names used, $(wc -l <<<"$exposed") exposed"
  [ -z "$missing" ] || echo "  not in the exposition:$missing"
  [ -z "$missing" ]
}
check "every metric the rules and the dashboard use is in the monitor's exposition" names_exposed
echo "fleet: $pass passed, $fail failed"
[ $fail = 0 ]
