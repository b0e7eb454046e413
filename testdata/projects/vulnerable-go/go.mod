module example.com/vulnerable

go 1.26

require golang.org/x/text v0.3.6

// A stand-in for golang.org/x/text v0.3.6 (see third_party/text/README.md),
// so the build needs no network.
replace golang.org/x/text => ./third_party/text
