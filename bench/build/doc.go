// Package buildbench measures what custody build adds to recording a
// build: the redaction scan (internal/redact) of a large recorded
// environment and argument list, against recording the same variables and
// arguments without it, in the same run. Results are in results.md.
package buildbench
