package main

import (
	"fmt"
	"io"
	"slices"
	"time"
)

type report struct {
	backend   string
	workers   int
	n, target int
	fill      fillResult
	bulk      fillResult
	version   string
	putPhases []putPhase
	big       *results
	small     *results
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func ratio(a, b time.Duration) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

func medianInt(v []int) int {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**missed**"
}

func (r *report) goalDigest() time.Duration {
	if r.backend == "postgres" {
		return 10 * time.Millisecond
	}
	return 5 * time.Millisecond
}

func (r *report) print(w io.Writer) { r.markdown(w) }

func (r *report) markdown(w io.Writer) {
	name := map[string]string{"sqlite": "SQLite (modernc.org/sqlite)", "postgres": "PostgreSQL"}[r.backend]
	fmt.Fprintf(w, "### %s\n\n%s.\n\n", name, r.version)

	f := r.fill
	switch {
	case f.puts == 0:
		fmt.Fprintf(w, "Index reused: %d bundles already present (fill time is in an earlier run's results).\n\n", f.before)
	default:
		fmt.Fprintf(w, "Fill: %d `Put` calls (%d new records) from %d concurrent callers in %v: **%.0f Puts/s**",
			f.puts, f.created, r.workers, f.dur.Round(time.Second), f.rate())
		if f.before > 0 {
			fmt.Fprintf(w, " (continuing an index that held %d)", f.before)
		}
		fmt.Fprintf(w, "; %d bundles at that rate: %v.\n\n", r.target, (time.Duration(float64(r.target)/f.rate()) * time.Second).Round(time.Second))
	}
	if len(r.putPhases) > 0 {
		var puts int
		var dur time.Duration
		for _, p := range r.putPhases {
			puts += p.puts
			dur += p.dur
		}
		rate := float64(puts) / dur.Seconds()
		fmt.Fprintf(w, "All Put phases of this index so far (%d runs, %d concurrent callers): %d new records in %v, **%.0f Puts/s**; %d bundles through Put would take ≈%v.\n\n",
			len(r.putPhases), r.workers, puts, dur.Round(time.Second), rate, r.target, (time.Duration(float64(r.target)/rate) * time.Second).Round(time.Minute))
	}
	if r.bulk.created > 0 {
		fmt.Fprintf(w, "Then the remaining %d bundles were bulk loaded with bare SQL (%d per transaction, not through the API) in %v; "+
			"300 random records were read back through the Store API and matched the corpus.\n\n",
			r.bulk.created, bulkBatch, r.bulk.dur.Round(time.Second))
	}
	if r.n < r.target {
		fmt.Fprintf(w, "**Measured on %d bundles, not %d** (fill stopped at its time limit).\n\n", r.n, r.target)
	}

	b, s := r.big, r.small
	fmt.Fprintf(w, "Lookup by digest (`Search{Digest}`, random existing artifact digests, %d per method, one at a time; ≈%.1f records per answer):\n\n", len(b.dStore), b.dRecords)
	fmt.Fprintln(w, "| index | method | p50 | p99 | mean | max |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- |")
	row := func(n int, m string, l lat) {
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s |\n", n, m, ms(l.pct(50)), ms(l.pct(99)), ms(l.mean()), ms(l.pct(100)))
	}
	row(b.n, "store API", b.dStore)
	row(b.n, "bare prepared query, same rows", b.dBare)
	row(b.n, "bare prepared query, IDs only", b.dBareIdx)
	if s != nil {
		row(s.n, "store API", s.dStore)
		row(s.n, "bare prepared query, same rows", s.dBare)
	}
	fmt.Fprintf(w, "\nRatio store API / bare (same rows) at %d: p50 %s, p99 %s.", b.n, ratio(b.dStore.pct(50), b.dBare.pct(50)), ratio(b.dStore.pct(99), b.dBare.pct(99)))
	if s != nil {
		fmt.Fprintf(w, " Store API at %d / at %d: p50 %s, p99 %s.", b.n, s.n, ratio(b.dStore.pct(50), s.dStore.pct(50)), ratio(b.dStore.pct(99), s.dStore.pct(99)))
	}
	g := r.goalDigest()
	fmt.Fprintf(w, "\nGoal p99 < %v: %s (%s).\n\n", g, verdict(b.dStore.pct(99) < g), ms(b.dStore.pct(99)))

	fmt.Fprintln(w, "Everything signed by key K (`Search{SignerKeyID, Limit: 1000}` paging with `AfterID` to the end; time per key; bare = one prepared join query for all of the key's records and subjects; bare IDs only = `SELECT id FROM evidence WHERE signer_key_id = ?`, what a metadata-only answer could cost):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| index | keys | records/key (median) | pages/key | store p50 | store max | bare p50 | bare max | store/bare p50 | bare IDs only p50 |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, res := range []*results{b, s} {
		if res == nil {
			continue
		}
		for _, k := range res.keys {
			fmt.Fprintf(w, "| %d | %s ×%d | %d | %.1f | %s | %s | %s | %s | %s | %s |\n", res.n, k.class, k.keys, medianInt(k.recs), k.pagesPerKey,
				ms(k.store.pct(50)), ms(k.store.pct(100)), ms(k.bare.pct(50)), ms(k.bare.pct(100)), ratio(k.store.pct(50), k.bare.pct(50)), ms(k.bareIDs.pct(50)))
		}
	}
	fmt.Fprintln(w)
	for _, k := range b.keys {
		fmt.Fprintf(w, "Goal < 200 ms, %s keys (%d records each): %s (max %s).\n", k.class, medianInt(k.recs), verdict(k.store.pct(100) < 200*time.Millisecond), ms(k.store.pct(100)))
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "Signed by K since T (`Search{SignerKeyID, Since}`, T = newest record's time minus the window, paged to the end; time per key):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| index | keys | window | records/key (median) | store p50 | store max | bare p50 | store/bare p50 |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, res := range []*results{b, s} {
		if res == nil {
			continue
		}
		for _, x := range res.since {
			fmt.Fprintf(w, "| %d | %s | %s | %d | %s | %s | %s | %s |\n", res.n, x.class, x.window, medianInt(x.recs),
				ms(x.store.pct(50)), ms(x.store.pct(100)), ms(x.bare.pct(50)), ratio(x.store.pct(50), x.bare.pct(50)))
		}
	}
	fmt.Fprintln(w)
}
