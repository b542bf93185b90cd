#!/bin/sh
# Development aid, not run by the tests: rebuild this folder's libvirt answers with the oracle in
# /work/shared/oracle (libvirt 9.0's own QEMU command-line generator, see README.md here).
#   ./regenerate.sh intent CASE...   CASE.xml := teamc's domain for CASE.team as a user would leave it
#                                    to libvirt: no pcie-root-port, guest addresses only where pinned
#   ./regenerate.sh                  CASE.args := libvirt_argv.sh CASE.xml 7.2.0, for every CASE.xml
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ORACLE=${ORACLE:-/work/shared/oracle}
if [ "${1:-}" = intent ]; then
  shift
  for case in "$@"; do
    (cd "$HERE/../.." && python3 - "$HERE/$case.team" > "$HERE/$case.xml") <<'PY'
import sys
from lxml import etree
from teamc.layout import layout
from teamc.pipeline import check_source, load
from teamc.render import render
from teamc.backends.libvirt import domain_view

graph, result = check_source(load(sys.argv[1])[0])
assert not result.failed, [d.message for d in result.diagnostics]
(vm_layout,) = layout(graph)
root = etree.fromstring(render("libvirt/domain.xml.j2", d=domain_view(vm_layout)).encode())
devices = root.find("devices")
for controller in devices.findall("controller[@model='pcie-root-port']"):
    devices.remove(controller)
for element, device in zip(devices.xpath("interface|hostdev"), vm_layout.devices):
    address = element.find("address")
    if device.nic.guest_address is None:
        element.remove(address)
    else:
        address.attrib.pop("multifunction", None)
sys.stdout.write(etree.tostring(root, encoding="unicode") + "\n")
PY
  done
  exit 0
fi
for xml in "$HERE"/*.xml; do
  "$ORACLE/libvirt_argv.sh" "$xml" 7.2.0 > "${xml%.xml}.args" || true
done
