#!/bin/sh
# Reproducible: no paths (-trimpath), no build ID, no time; -buildvcs=false
# so a GOFLAGS in the builder's go env file (which a hermetic rebuild, with its
# own HOME, does not read) cannot change the binary.
set -e
mkdir -p dist
CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags=-buildid= -o dist/app .
