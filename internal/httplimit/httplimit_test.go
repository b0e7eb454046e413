package httplimit_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/httplimit"
)

// serve runs h on 127.0.0.1 with o and returns its address.
func serve(t *testing.T, h http.Handler, o httplimit.Options) (*httplimit.Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := httplimit.New(h, o)
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return s, ln.Addr().String()
}

// echo answers the length of the request body, or 408 when the body did
// not arrive in time.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if httplimit.IsTimeout(err) {
		http.Error(w, "body too slow", http.StatusRequestTimeout)
		return
	}
	io.WriteString(w, strings.Repeat("x", len(b)))
})

// dial opens a raw connection and sends what.
func dial(t *testing.T, addr, what string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if what != "" {
		if _, err := io.WriteString(c, what); err != nil {
			t.Fatal(err)
		}
	}
	return c, bufio.NewReader(c)
}

// closedByServer reports whether the server ends c (within a generous
// while: the test asserts the outcome, not the time).
func closedByServer(c net.Conn, br *bufio.Reader) bool {
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.Copy(io.Discard, br)
	return err == nil // EOF: the server closed it
}

func TestSlowClientsCutOff(t *testing.T) {
	o := httplimit.Options{HeaderTimeout: 200 * time.Millisecond, BodyTimeout: 200 * time.Millisecond,
		IdleTimeout: 200 * time.Millisecond, MaxConns: 100}
	_, addr := serve(t, echo, o)

	t.Run("headers never end", func(t *testing.T) {
		c, br := dial(t, addr, "POST / HTTP/1.1\r\nHost: x\r\n")
		if !closedByServer(c, br) {
			t.Error("a client that never finished its headers kept its connection")
		}
	})
	t.Run("body never comes", func(t *testing.T) {
		c, br := dial(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("status %d, want 408", resp.StatusCode)
		}
		if !closedByServer(c, br) {
			t.Error("a client whose body never came kept its connection")
		}
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		c, br := dial(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if !closedByServer(c, br) {
			t.Error("an idle keep-alive connection never expired")
		}
	})
	t.Run("slow handler keeps its request", func(t *testing.T) {
		// A handler working past the body deadline, after reading its
		// body, still answers.
		slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.ReadAll(r.Body)
			time.Sleep(3 * o.BodyTimeout)
			if r.Context().Err() != nil {
				http.Error(w, "cancelled", http.StatusInternalServerError)
				return
			}
			io.WriteString(w, "done")
		})
		_, addr := serve(t, slow, o)
		resp, err := http.Post("http://"+addr, "text/plain", strings.NewReader("abc"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != "done" {
			t.Errorf("answer %d %q", resp.StatusCode, b)
		}
	})
}

func TestWriteTimeout(t *testing.T) {
	big := strings.Repeat("x", 64<<20)
	done := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.WriteString(w, big)
		done <- err
	})
	_, addr := serve(t, h, httplimit.Options{WriteTimeout: 300 * time.Millisecond})
	// A client that asks and never reads.
	dial(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case err := <-done:
		if err == nil {
			t.Error("the whole answer was written to a client that reads nothing")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the handler is still writing to a client that reads nothing")
	}
}

func TestConnectionCap(t *testing.T) {
	block := make(chan struct{})
	entered := make(chan struct{}, 16)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			entered <- struct{}{}
			<-block
		}
		io.WriteString(w, "ok")
	})
	s, addr := serve(t, h, httplimit.Options{MaxConns: 4})
	var once sync.Once
	unblock := func() { once.Do(func() { close(block) }) }
	defer unblock()
	get := func(c net.Conn, br *bufio.Reader, path string) int {
		t.Helper()
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	// Four idle keep-alive connections fill the cap; a fifth client gets
	// in, and the oldest idle one is closed to make room.
	var idle []net.Conn
	var idleR []*bufio.Reader
	for range 4 {
		c, br := dial(t, addr, "")
		if st := get(c, br, "/"); st != http.StatusOK {
			t.Fatalf("status %d", st)
		}
		idle, idleR = append(idle, c), append(idleR, br)
	}
	c, br := dial(t, addr, "")
	if st := get(c, br, "/"); st != http.StatusOK {
		t.Fatalf("a new client beyond idle connections: status %d", st)
	}
	if !closedByServer(idle[0], idleR[0]) {
		t.Error("the oldest idle connection was not closed to make room")
	}
	if open, _ := s.Conns(); open > 4 {
		t.Errorf("%d connections open, cap 4", open)
	}

	// Four busy connections: the next one is refused with 503, and the
	// busy ones still get their answers.
	var busy []net.Conn
	var busyR []*bufio.Reader
	for _, c := range append(idle[1:], c) {
		c.Close()
	}
	for open, _ := s.Conns(); open > 0; open, _ = s.Conns() {
		time.Sleep(10 * time.Millisecond)
	}
	for range 4 {
		c, br := dial(t, addr, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
		busy, busyR = append(busy, c), append(busyR, br)
	}
	for range 4 {
		<-entered // a connection still before its handler may be closed to make room
	}
	var refused *http.Response
	for range 200 {
		// Retry while the server is still admitting the busy ones.
		nc, nbr := dial(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(nbr, nil)
		if err == nil && resp.StatusCode == http.StatusServiceUnavailable {
			refused = resp
			break
		}
		nc.Close()
		time.Sleep(10 * time.Millisecond)
	}
	if refused == nil || refused.Header.Get("Retry-After") == "" {
		t.Fatalf("a connection beyond the cap was not refused with 503 and Retry-After: %v", refused)
	}
	unblock()
	for i, c := range busy {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(busyR[i], nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("busy connection %d broken by the cap: %v", i, err)
		}
	}
}

// Over TLS the cap sees the same connections: idle ones are closed to make
// room (net/http reports TLS connections' states with the *tls.Conn).
// selfSigned writes a certificate for 127.0.0.1 and its key to files and
// returns them with a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestConnectionCapTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := httplimit.New(echo, httplimit.Options{MaxConns: 2})
	go s.ServeTLS(ln, certFile, keyFile)
	t.Cleanup(func() { s.Close() })
	// Each client keeps its own keep-alive connection.
	for i := range 4 {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		resp, err := c.Post("https://"+ln.Addr().String(), "text/plain", strings.NewReader("abc"))
		if err != nil {
			t.Fatalf("client %d beyond %d idle TLS connections: %v", i, i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("client %d: status %d", i, resp.StatusCode)
		}
		if open, _ := s.Conns(); open > 2 {
			t.Fatalf("%d connections open, cap 2", open)
		}
	}
	if _, refused := s.Conns(); refused != 0 {
		t.Errorf("%d connections refused; idle ones should have made room", refused)
	}
}

// Connections that never get a request to the handler (silent, or trickling
// their headers a byte at a time under the header timeout) have
// authenticated nobody: at the cap the oldest of them is closed to make room,
// so whoever can connect cannot lock out every client, admins included.
func TestConnectionCapSilentClients(t *testing.T) {
	s, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		httplimit.Options{MaxConns: 4})
	var held []net.Conn
	var heldR []*bufio.Reader
	for i := range 4 {
		what := "GET / HTTP/1.1\r\nHo" // headers that never end
		if i%2 == 1 {
			what = "" // not a byte
		}
		c, br := dial(t, addr, what)
		held, heldR = append(held, c), append(heldR, br)
	}
	for open, _ := s.Conns(); open < 4; open, _ = s.Conns() {
		time.Sleep(10 * time.Millisecond)
	}
	c, br := dial(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("a client beyond 4 silent connections: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a client beyond 4 silent connections: status %d, want 200", resp.StatusCode)
	}
	if !closedByServer(held[0], heldR[0]) {
		t.Error("the oldest silent connection was not closed to make room")
	}
	if open, _ := s.Conns(); open > 4 {
		t.Errorf("%d connections open, cap 4", open)
	}
}

// An HTTP/2 connection running a request is busy, whatever its streams: a
// new client beyond the cap does not close it.
func TestConnectionCapHTTP2(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered, block := make(chan string, 1), make(chan struct{})
	defer close(block)
	s := httplimit.New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- r.Proto
		<-block
	}), httplimit.Options{MaxConns: 1})
	go s.ServeTLS(ln, certFile, keyFile)
	t.Cleanup(func() { s.Close() })
	client := func() *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	}
	errc := make(chan error, 1)
	go func() {
		resp, err := client().Get("https://" + ln.Addr().String())
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	if proto := <-entered; proto != "HTTP/2.0" {
		t.Fatalf("the request ran over %s, not HTTP/2", proto)
	}
	if _, err := client().Get("https://" + ln.Addr().String()); err == nil {
		t.Error("a client beyond the cap got in while the only connection ran a request")
	}
	select {
	case err := <-errc:
		t.Errorf("the busy HTTP/2 connection was closed to make room: %v", err)
	default:
	}
	if open, _ := s.Conns(); open != 1 {
		t.Errorf("%d connections open, want the busy one", open)
	}
}
