package server_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/httplimit"
	"github.com/custody-dev/custody/internal/server"
)

func TestListenAndServe(t *testing.T) {
	cfg := server.Config{Dir: t.TempDir(), BatchMaxAge: 5 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	urlc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.ListenAndServe(ctx, cfg, server.ServeOptions{Listen: "127.0.0.1:0",
			Listening: func(addr net.Addr, scheme, publicURL string) { urlc <- publicURL }})
	}()
	var url string
	select {
	case url = <-urlc:
	case err := <-done:
		t.Fatalf("ListenAndServe returned before listening: %v", err)
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Errorf("public URL %q is not the address listened on", url)
	}
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz: %s", resp.Status)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("after cancel: %v", err)
	}

	// An address in use is a *httplimit.ListenError, and opens nothing.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var le *httplimit.ListenError
	if err := server.ListenAndServe(context.Background(), cfg, server.ServeOptions{Listen: ln.Addr().String()}); !errors.As(err, &le) {
		t.Errorf("address in use: err = %v, want *httplimit.ListenError", err)
	}
	if err := server.ListenAndServe(context.Background(), cfg, server.ServeOptions{Listen: "127.0.0.1:0", TLSCert: "cert.pem"}); err == nil {
		t.Error("a TLS certificate without its key was accepted")
	}
}
