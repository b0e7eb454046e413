package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/httplimit"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store/storetest"
)

// putLarge indexes n records whose bundles are exactly size bytes of JSON.
func putLarge(t *testing.T, ts *testServer, n, size int) []int64 {
	t.Helper()
	var ids []int64
	for i := range n {
		e := storetest.Evidence(i)
		head := fmt.Sprintf(`{"test":%d,"pad":"`, i)
		e.Bundle = []byte(head + strings.Repeat("x", size-len(head)-2) + `"}`)
		id, _, err := ts.Index().Put(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// Pages are capped by bytes as well as by count; the server names where
// the matches continue and the client follows, so callers that page by
// count see every record once.
func TestSearchPages(t *testing.T) {
	const size = 2000
	ts := start(t, server.Config{MaxPageBytes: 5 * size})
	ids := putLarge(t, ts, 23, size)
	a := do(t, ts, http.MethodGet, "/api/v1/evidence?limit=20", ts.tokens[api.RoleAuditor], nil)
	var page api.SearchResponse
	if err := json.Unmarshal([]byte(a.body), &page); err != nil || a.status != http.StatusOK {
		t.Fatalf("search: %d %v", a.status, err)
	}
	if len(page.Evidence) != 5 || page.Next != ids[4] {
		t.Fatalf("a page capped at 5 bundles holds %d records, next %d (want 5, %d)", len(page.Evidence), page.Next, ids[4])
	}

	cl := newClient(t, ts, api.RoleAuditor)
	for _, limit := range []int{1, 7, 20, 1000} {
		var got []int64
		q := api.Query{Limit: limit}
		for {
			es, err := cl.Search(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				got = append(got, e.ID)
			}
			if len(es) < limit {
				break
			}
			if len(es) > limit {
				t.Fatalf("limit %d: %d records", limit, len(es))
			}
			q.AfterID = es[len(es)-1].ID
		}
		if fmt.Sprint(got) != fmt.Sprint(ids) {
			t.Errorf("limit %d: paging gave %v, want %v", limit, got, ids)
		}
	}
	// The last page names no continuation.
	a = do(t, ts, http.MethodGet, "/api/v1/evidence?after="+strconv.FormatInt(ids[20], 10), ts.tokens[api.RoleAuditor], nil)
	page = api.SearchResponse{}
	if err := json.Unmarshal([]byte(a.body), &page); err != nil || len(page.Evidence) != 2 || page.Next != 0 {
		t.Errorf("last page: %d records, next %d, %v", len(page.Evidence), page.Next, err)
	}
}

// heapPeak samples the live heap until stop is closed and returns the
// largest sample.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

var nextRe = regexp.MustCompile(`,"next":([0-9]+)\}\s*$`)

// Issue 11 item 5: one search of 150 large bundles built a 201 MB answer,
// 8 at once took the server to 3.5 GB, and clients that never read held
// their answers. Now a page holds about MaxPageBytes, written record by
// record: the heap stays within a bound proportional to the page cap,
// whatever the index holds.
func TestSearchMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("indexes 25 MB")
	}
	const (
		bundles    = 100
		size       = 256 << 10
		pageBytes  = 1 << 20
		readers    = 8
		nonReaders = 6
	)
	ts, _ := startLimited(t, server.Config{MaxPageBytes: pageBytes}, httplimit.Options{WriteTimeout: 2 * time.Second})
	putLarge(t, ts, bundles, size)
	tok := ts.tokens[api.RoleAuditor]
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	base := s[0].Value.Uint64()

	stop := make(chan struct{})
	peak := heapPeak(stop)
	// Clients that ask for everything and never read.
	for range nonReaders {
		c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /api/v1/evidence?limit=1000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", tok)
	}
	// Readers that page through everything at once.
	var wg sync.WaitGroup
	counts := make([]int, readers)
	errs := make([]error, readers)
	for i := range readers {
		wg.Go(func() {
			after := int64(0)
			for {
				req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/v1/evidence?limit=1000&after=%d", ts.url, after), nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs[i] = err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					errs[i] = fmt.Errorf("status %d, %v", resp.StatusCode, err)
					return
				}
				counts[i] += strings.Count(string(b), `"bundleSha256"`)
				m := nextRe.FindSubmatch(b)
				if m == nil {
					return
				}
				after, _ = strconv.ParseInt(string(m[1]), 10, 64)
			}
		})
	}
	wg.Wait()
	close(stop)
	p := <-peak
	for i := range readers {
		if errs[i] != nil || counts[i] != bundles {
			t.Errorf("reader %d: %d records, %v", i, counts[i], errs[i])
		}
	}
	// Each search holds about a page and one bundle; allow four times
	// that per client (garbage the collector has not reached, the
	// readers' own copies) over what the heap held before.
	bound := base + (readers+nonReaders)*4*(pageBytes+size)
	t.Logf("heap: %d MB before, peak %d MB, bound %d MB (index holds %d MB of bundles)", base>>20, p>>20, bound>>20, bundles*size>>20)
	if p > uint64(bound) {
		t.Errorf("heap peaked at %d MB under %d concurrent searches, over the bound of %d MB", p>>20, readers+nonReaders, bound>>20)
	}
}
