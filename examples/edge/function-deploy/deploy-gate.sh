#!/bin/sh
# custody deploy gate for a function platform.
#
#   deploy-gate.sh PACKAGE PACK -- UPLOAD-COMMAND...
#
# Verifies the deployment package (a zip, a container tarball) with its
# evidence pack before it is uploaded, then runs the upload command with the
# package as its last argument. Nothing is uploaded unless the environment's
# policy allows the package, so a package moved between pipelines or
# accounts meets the same check everywhere. Example (AWS Lambda):
#
#   deploy-gate.sh function.zip function.custody -- \
#     sh -c 'aws lambda update-function-code --function-name api --zip-file "fileb://$0"'
#
# The pack is made where the evidence is ('custody pack function.zip --server
# URL --env prod --key packer.key --out function.custody'); the gate needs no
# network for the decision.
#
#   CUSTODY_VERIFY (custody-verify on PATH), CUSTODY_TRUST_ROOT (root.json),
#   CUSTODY_ENV (prod), CUSTODY_STATE (the gate's own state file)
set -u
pkg=${1:?usage: deploy-gate.sh PACKAGE PACK -- UPLOAD-COMMAND...}
pack=${2:?usage: deploy-gate.sh PACKAGE PACK -- UPLOAD-COMMAND...}
shift 2
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || { echo "deploy-gate: no upload command" >&2; exit 2; }
# One private copy is verified and uploaded: a package swapped in its
# directory between the check and the upload is never the one uploaded.
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
copy="$tmp/$(basename "$pkg")"
cp "$pkg" "$copy" || exit 2
if ! "${CUSTODY_VERIFY:-custody-verify}" --pack "$pack" --env "${CUSTODY_ENV:-prod}" \
	--trust-root "${CUSTODY_TRUST_ROOT:-root.json}" ${CUSTODY_STATE:+--state "$CUSTODY_STATE"} "$copy"; then
	echo "deploy-gate: $pkg REFUSED: not uploaded" >&2
	exit 1
fi
# The command gets the verified copy (same file name) as its last
# argument, never pasted into a shell string.
"$@" "$copy"
