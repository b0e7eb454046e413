#!/bin/sh
# custody pre-install hook for a device update agent.
#
#   custody-preinstall.sh PAYLOAD PACK
#
# Runs the lean verifier on the update payload with the evidence pack that
# came with it, offline, and exits non-zero (refusing the update) unless the
# environment's policy allows the payload. Wire it where the agent runs
# checks before installing:
#   - systemd: ExecStartPre= of the unit that installs (see custody-update.service)
#   - RAUC: a pre-install handler; SWUpdate: a preinstall script;
#     Mender: an ArtifactInstall_Enter state script
# The agent must install the very bytes this checked: give it a payload in
# a directory only the agent writes (custody-update.service copies it to
# its private runtime directory first), never one another process can
# replace between the check and the install.
#
# Configuration (environment, with the defaults a device image sets):
#   CUSTODY_VERIFY      the lean verifier            (/usr/bin/custody-verify)
#   CUSTODY_TRUST_ROOT  the device's trust root      (/etc/custody/root.json)
#   CUSTODY_ENV         the environment of the fleet (prod)
#   CUSTODY_STATE       the device's state: last seen log checkpoint; keep it
#                       on storage that survives updates (/var/lib/custody/edge-state.json)
set -u
payload=${1:?usage: custody-preinstall.sh PAYLOAD PACK}
pack=${2:?usage: custody-preinstall.sh PAYLOAD PACK}
verify=${CUSTODY_VERIFY:-/usr/bin/custody-verify}
if "$verify" --pack "$pack" --env "${CUSTODY_ENV:-prod}" \
	--trust-root "${CUSTODY_TRUST_ROOT:-/etc/custody/root.json}" \
	--state "${CUSTODY_STATE:-/var/lib/custody/edge-state.json}" "$payload"; then
	echo "custody: update $payload allowed"
	exit 0
fi
echo "custody: update $payload REFUSED: not installed" >&2
exit 1
