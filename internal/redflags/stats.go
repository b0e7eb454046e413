package redflags

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Timing thresholds. A duration is an outlier only when every one holds,
// so natural noise (cold caches, a busy runner) never flags:
//
//   - at least MinTimingHistory earlier builds of the track with times;
//   - more than durationSigmas robust standard deviations (1.4826 × the
//     median absolute deviation, itself at least 10% of the median) from
//     the median;
//   - at least durationFactor times the median (or at most 1/durationFactor
//     of it);
//   - at least DurationFloor away from the median in absolute terms.
//
// Medians and MADs move only when half the window moves, so a few odd
// builds (or a few builds an attacker adds) do not shift the baseline.
const (
	MinTimingHistory = 8
	durationSigmas   = 6
	durationFactor   = 3
	timingWindow     = 30
	// MinHourHistory is the history needed before a build at an hour the
	// lineage never built at is flagged.
	MinHourHistory = 30
)

// DurationFloor is the smallest absolute difference from the median that
// can flag a duration.
const DurationFloor = 5 * time.Second

// spread summarises durations: median, robust sigma and the 5th to 95th
// percentile range, for the message.
type spread struct {
	n             int
	median, sigma time.Duration
	lowP, highP   time.Duration
}

func newSpread(ds []time.Duration) spread {
	s := slices.Clone(ds)
	slices.Sort(s)
	med := quantile(s, 0.5)
	dev := make([]time.Duration, len(s))
	for i, d := range s {
		dev[i] = absDur(d - med)
	}
	slices.Sort(dev)
	sigma := time.Duration(1.4826 * float64(quantile(dev, 0.5)))
	sigma = max(sigma, med/10)
	return spread{n: len(s), median: med, sigma: sigma, lowP: quantile(s, 0.05), highP: quantile(s, 0.95)}
}

// quantile of sorted s by linear interpolation; s is not empty.
func quantile(s []time.Duration, q float64) time.Duration {
	pos := q * float64(len(s)-1)
	i := int(math.Floor(pos))
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	frac := pos - float64(i)
	return s[i] + time.Duration(frac*float64(s[i+1]-s[i]))
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// durationOutlier judges d against the durations of earlier builds
// (newest first; the newest timingWindow count) and returns the finding's
// message, or "" when d is ordinary or the history is too short.
func durationOutlier(d time.Duration, hist []time.Duration) string {
	if d <= 0 || len(hist) < MinTimingHistory {
		return ""
	}
	s := newSpread(hist[:min(len(hist), timingWindow)])
	diff := d - s.median
	slow := diff > 0 && d >= durationFactor*s.median
	fast := diff < 0 && d*durationFactor <= s.median
	if !(slow || fast) || absDur(diff) < DurationFloor || absDur(diff) <= durationSigmas*s.sigma {
		return ""
	}
	way := "longer"
	if fast {
		way = "shorter"
	}
	return fmt.Sprintf("built in %s; the last %d builds took %s–%s (median %s): %.1f× %s",
		roundDur(d), s.n, roundDur(s.lowP), roundDur(s.highP), roundDur(s.median), ratio(d, s.median), way)
}

func ratio(a, b time.Duration) float64 {
	if a < b {
		a, b = b, a
	}
	if b <= 0 {
		return math.Inf(1)
	}
	return float64(a) / float64(b)
}

// roundDur rounds for messages: whole seconds from 10 s, else 0.1 s.
func roundDur(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

// unusualHour returns the finding's message when t's hour of day (UTC)
// lies well inside the lineage's quiet hours: the longest run of hours
// (at least minQuietHours) at which none of the earlier builds ran, less
// one hour at each end. Builds at any hour within the span the lineage
// works in are never flagged, however unevenly they spread over it. It
// returns "" too when the history is shorter than MinHourHistory.
func unusualHour(t time.Time, hist []time.Time) string {
	if t.IsZero() || len(hist) < MinHourHistory {
		return ""
	}
	var count [24]int
	for _, h := range hist {
		count[h.UTC().Hour()]++
	}
	start, length := 0, 0
	for s := 0; s < 24; s++ {
		n := 0
		for n < 24 && count[(s+n)%24] == 0 {
			n++
		}
		if n > length {
			start, length = s, n
		}
	}
	if length < minQuietHours || length == 24 {
		return ""
	}
	hour := t.UTC().Hour()
	off := (hour - start + 24) % 24
	if off < 1 || off > length-2 {
		return ""
	}
	end := (start + length) % 24
	return fmt.Sprintf("built at %02d:%02d UTC; the last %d builds all ran between %02d:00 and %02d:00 UTC",
		hour, t.UTC().Minute(), len(hist), end, start)
}

// minQuietHours is the shortest run of hours without builds that counts
// as the lineage's quiet hours.
const minQuietHours = 4
