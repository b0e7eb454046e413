package server_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/server"
)

// A server that serves TLS itself marks its dashboard cookies Secure even
// when its public URL says http (custody serve --tls-cert with a
// --public-url naming another scheme, or none): a cookie set over https
// must never be sent back over plain http.
func TestSessionCookieSecureOverTLS(t *testing.T) {
	var hs *httptest.Server
	ts := startWith(t, server.Config{UI: func(server.UIDeps) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "page") }), nil
	}}, func(h http.Handler, ln net.Listener) func() {
		hs = httptest.NewUnstartedServer(h)
		hs.Listener.Close()
		hs.Listener = ln
		hs.StartTLS()
		return hs.Close
	})
	resp, err := hs.Client().Get(strings.Replace(ts.url, "http://", "https://", 1) + "/ui/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cs := resp.Cookies()
	if len(cs) == 0 {
		t.Fatal("the login form set no cookie")
	}
	for _, c := range cs {
		if !c.Secure {
			t.Errorf("cookie %s set over TLS without Secure", c.Name)
		}
	}
}
