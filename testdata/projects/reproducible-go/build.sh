#!/bin/sh
# Reproducible: no paths (-trimpath), no build ID, no time.
set -e
mkdir -p dist
CGO_ENABLED=0 go build -trimpath -ldflags=-buildid= -o dist/app .
