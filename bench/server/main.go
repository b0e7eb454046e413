// Command server measures custody serve under slow, idle and memory-hungry
// clients, for each custody binary named on the command line, in one run:
//
//   - search memory: the server's peak RSS above its idle RSS while
//     -readers clients page through an index of -bundles bundles of -size
//     bytes at once and -nonreaders clients ask for everything and never
//     read;
//   - writes: signs/s with -signers concurrent builders for -duration, and
//     the latency of -admin sequential admin incident writes, first on a
//     quiet server (the baseline) and then with -slow builders that sent a
//     POST's headers and stalled plus -idle idle keep-alive connections
//     attached.
//
// Usage: go run ./bench/server NAME=CUSTODY-BINARY ... (bench/server/run.sh
// builds the binaries). Each binary gets a fresh data directory whose index
// is filled directly (store.OpenSQLite) before it starts.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/store"
)

var (
	bundles    = flag.Int("bundles", 100, "bundles in the index")
	size       = flag.Int("size", 256<<10, "bytes per bundle")
	readers    = flag.Int("readers", 8, "clients paging through every bundle at once")
	nonReaders = flag.Int("nonreaders", 6, "clients that ask for every bundle and never read")
	signers    = flag.Int("signers", 32, "concurrent builders signing")
	duration   = flag.Duration("duration", 5*time.Second, "how long builders sign, per phase")
	admin      = flag.Int("admin", 20, "sequential admin writes per phase")
	slow       = flag.Int("slow", 300, "stalled builder uploads attached in the loaded phase")
	idle       = flag.Int("idle", 200, "idle keep-alive connections attached in the loaded phase")
)

func main() {
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: server [flags] NAME=CUSTODY-BINARY ...")
		os.Exit(2)
	}
	work, err := os.MkdirTemp("", "custody-server-bench")
	must(err)
	defer os.RemoveAll(work)
	fmt.Printf("index: %d bundles of %d KiB (%d MiB); %d readers + %d non-readers; %d signers for %s; %d admin writes; loaded: %d stalled uploads + %d idle connections\n\n",
		*bundles, *size>>10, *bundles**size>>20, *readers, *nonReaders, *signers, *duration, *admin, *slow, *idle)
	fmt.Println("| build | search peak RSS over idle | searches done | signs/s quiet | signs/s loaded | loaded/quiet | admin p50 quiet | admin p50 loaded | admin max loaded | admin failures loaded |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, arg := range flag.Args() {
		name, bin, ok := strings.Cut(arg, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "%q is not NAME=BINARY\n", arg)
			os.Exit(2)
		}
		r := run(filepath.Join(work, name), bin)
		fmt.Printf("| %s | %d MiB | %d/%d | %.0f | %.0f | %.2f× | %s | %s | %s | %d/%d |\n", name, r.rss>>20, r.searchesOK, *readers,
			r.quiet.signsPerSec, r.loaded.signsPerSec, r.loaded.signsPerSec/max(r.quiet.signsPerSec, 1e-9),
			r.quiet.p50, r.loaded.p50, r.loaded.max, r.loaded.adminFailed, *admin)
	}
}

type phase struct {
	signsPerSec   float64
	p50, max      time.Duration
	adminFailed   int
	signStatuses  map[int]int
	adminStatuses map[int]int
}

type result struct {
	rss           int64
	searchesOK    int
	quiet, loaded phase
}

// server is a running custody serve.
type server struct {
	cmd    *exec.Cmd
	url    string
	tokens map[string]string
}

func run(dir, bin string) result {
	s := &server{tokens: map[string]string{}}
	for _, role := range []string{"builder", "admin", "auditor"} {
		out, err := exec.Command(bin, "token", "create", "--role", role, "--data", dir).Output()
		must(err)
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		s.tokens[role] = lines[len(lines)-1]
	}
	fill(filepath.Join(dir, "index.db"))
	s.start(bin, dir)
	defer s.stop()

	var r result
	r.rss, r.searchesOK = s.searchMemory()
	r.quiet = s.writes(0)
	closeLoad := s.attach()
	r.loaded = s.writes(1)
	closeLoad()
	return r
}

// fill indexes the bundles (JSON of the given size; not real bundles: a
// search serves what the index holds).
func fill(path string) {
	st, err := store.OpenSQLite(path)
	must(err)
	defer st.Close()
	for i := range *bundles {
		head := fmt.Sprintf(`{"bench":%d,"pad":"`, i)
		sum := sha256.Sum256([]byte(head))
		e := &store.Evidence{Bundle: []byte(head + strings.Repeat("x", *size-len(head)-2) + `"}`),
			Subjects:      []store.Subject{{Name: fmt.Sprintf("app-%d", i), Digests: map[string]string{"sha256": hex.EncodeToString(sum[:])}}},
			PredicateType: attest.PredicateSLSAv1, LogIndex: -1}
		_, _, err := st.Put(context.Background(), e)
		must(err)
	}
}

var servingRe = regexp.MustCompile(`serving on (http://\S+)`)

func (s *server) start(bin, dir string) {
	s.cmd = exec.Command(bin, "serve", "--data", dir, "--listen", "127.0.0.1:0")
	out, err := s.cmd.StdoutPipe()
	must(err)
	s.cmd.Stderr = io.Discard
	must(s.cmd.Start())
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if m := servingRe.FindStringSubmatch(sc.Text()); m != nil {
			s.url = m[1]
			break
		}
	}
	if s.url == "" {
		panic("custody serve did not start")
	}
	go io.Copy(io.Discard, out)
}

func (s *server) stop() {
	s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// rss reads the server's resident set, in bytes.
func (s *server) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

var nextRe = regexp.MustCompile(`,"next":([0-9]+)\}\s*$`)

// searchMemory returns the server's peak RSS over its idle RSS while the
// readers and non-readers search, and how many readers got every bundle.
func (s *server) searchMemory() (int64, int) {
	time.Sleep(time.Second)
	base := s.rss()
	stop := make(chan struct{})
	peakc := make(chan int64)
	go func() {
		var peak int64
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			peak = max(peak, s.rss())
			select {
			case <-stop:
				peakc <- peak
				return
			case <-t.C:
			}
		}
	}()
	host := strings.TrimPrefix(s.url, "http://")
	var conns []net.Conn
	for range *nonReaders {
		c, err := net.Dial("tcp", host)
		must(err)
		fmt.Fprintf(c, "GET /api/v1/evidence?limit=1000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", s.tokens["auditor"])
		conns = append(conns, c)
	}
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range *readers {
		wg.Go(func() {
			after, n := int64(0), 0
			for {
				b, status := s.get(fmt.Sprintf("/api/v1/evidence?limit=1000&after=%d", after), s.tokens["auditor"])
				if status != http.StatusOK {
					return
				}
				n += bytes.Count(b, []byte(`"bundleSha256"`))
				m := nextRe.FindSubmatch(b)
				if m == nil {
					break
				}
				after, _ = strconv.ParseInt(string(m[1]), 10, 64)
			}
			if n == *bundles {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	time.Sleep(500 * time.Millisecond) // the non-readers' answers, held
	close(stop)
	peak := <-peakc
	for _, c := range conns {
		c.Close()
	}
	return peak - base, int(ok.Load())
}

var hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 2 * time.Minute}

func (s *server) do(method, path, token string, body []byte) ([]byte, int) {
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	must(err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b, resp.StatusCode
}

func (s *server) get(path, token string) ([]byte, int) { return s.do(http.MethodGet, path, token, nil) }

var buildSeq atomic.Int64

// writes measures signs/s and admin write latency; phaseNo keeps build
// and incident IDs apart between phases.
func (s *server) writes(phaseNo int) phase {
	p := phase{signStatuses: map[int]int{}, adminStatuses: map[int]int{}}
	var mu sync.Mutex
	var signed atomic.Int64
	deadline := time.Now().Add(*duration)
	var wg sync.WaitGroup
	for range *signers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				_, st := s.do(http.MethodPost, "/api/v1/sign", s.tokens["builder"], signBody(buildSeq.Add(1)))
				mu.Lock()
				p.signStatuses[st]++
				mu.Unlock()
				if st == http.StatusOK {
					signed.Add(1)
				} else {
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	var lat []time.Duration
	for i := range *admin {
		body := fmt.Sprintf(`{"incident":"INC-20260301T120000Z-%08x","event":"opened","actor":"bench","time":%q,"detail":"bench"}`,
			phaseNo<<16|i, time.Now().UTC().Format(time.RFC3339Nano))
		t0 := time.Now()
		_, st := s.do(http.MethodPost, "/api/v1/incidents", s.tokens["admin"], []byte(body))
		lat = append(lat, time.Since(t0))
		p.adminStatuses[st]++
		if st/100 != 2 {
			p.adminFailed++
		}
	}
	wg.Wait()
	p.signsPerSec = float64(signed.Load()) / duration.Seconds()
	slices.Sort(lat)
	p.p50, p.max = lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond)
	fmt.Fprintf(os.Stderr, "phase %d: sign statuses %v, admin statuses %v\n", phaseNo, p.signStatuses, p.adminStatuses)
	return p
}

func signBody(n int64) []byte {
	sum := sha256.Sum256(fmt.Appendf(nil, "artifact %d", n))
	prov := attest.ProvenanceV1{
		BuildDefinition: attest.BuildDefinition{BuildType: attest.BuildTypeCustody,
			ExternalParameters: attest.CustodyExternalParameters{Command: []string{"make"}, WorkingDir: ".",
				Source: attest.CustodySource{URI: "git+https://example.com/org/repo", Commit: strings.Repeat("ab", 20)}}},
		RunDetails: attest.RunDetails{Builder: attest.Builder{ID: "https://custody.dev/builders/bench@v1"},
			Metadata: &attest.BuildMetadata{InvocationID: fmt.Sprintf("bench-%d", n)}},
	}
	st, err := attest.NewStatement([]attest.Subject{{Name: fmt.Sprintf("app-%d.bin", n), Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}}},
		attest.PredicateSLSAv1, prov)
	must(err)
	b, err := st.Marshal()
	must(err)
	return append(append([]byte(`{"statement":`), b...), '}')
}

// attach opens the stalled uploads and idle connections; the returned
// function closes them.
func (s *server) attach() func() {
	host := strings.TrimPrefix(s.url, "http://")
	var conns []net.Conn
	for range *slow {
		c, err := net.Dial("tcp", host)
		must(err)
		fmt.Fprintf(c, "POST /api/v1/sign HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"statement\":", s.tokens["builder"])
		conns = append(conns, c)
	}
	for range *idle {
		c, err := net.Dial("tcp", host)
		must(err)
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		if resp, err := http.ReadResponse(br, nil); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		conns = append(conns, c)
	}
	time.Sleep(500 * time.Millisecond) // the server reads the stalled headers
	return func() {
		for _, c := range conns {
			c.Close()
		}
	}
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
