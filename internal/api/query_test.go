package api

import (
	"net/url"
	"reflect"
	"testing"
	"time"
)

// TestQueryRoundTrip: what a client encodes, the server decodes to the
// same query, parameter names included.
func TestQueryRoundTrip(t *testing.T) {
	q := Query{Digest: "sha256:ab", SubjectName: "app", PredicateType: "p", SignerKeyID: "k", SignerIdentity: "i",
		BuilderID: "b", SourceURI: "s", SourceCommit: "c", BuildID: "id", ExcludePredicateTypes: []string{"x", "y"},
		Since: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Until: time.Date(2026, 2, 2, 3, 4, 5, 0, time.UTC), AfterID: 42, Limit: 7}
	v := q.Values()
	want := "after=42&buildId=id&builder=b&commit=c&digest=sha256%3Aab&identity=i&limit=7&name=app&notPredicateType=x&notPredicateType=y" +
		"&predicateType=p&signerKeyId=k&since=2026-01-02T03%3A04%3A05.000000006Z&source=s&until=2026-02-02T03%3A04%3A05Z"
	if v.Encode() != want {
		t.Errorf("query string\n%s\nwant\n%s", v.Encode(), want)
	}
	got, err := ParseQuery(v)
	if err != nil || !reflect.DeepEqual(got, q) {
		t.Errorf("ParseQuery = %+v, %v; want %+v", got, err, q)
	}
	if (Query{}).Values().Encode() != "" {
		t.Error("empty query has parameters")
	}
}

func TestParseQueryRefuses(t *testing.T) {
	for _, s := range []string{"since=yesterday", "until=1", "after=-1", "after=x", "limit=-1", "limit=many"} {
		v, _ := url.ParseQuery(s)
		if _, err := ParseQuery(v); err == nil {
			t.Errorf("accepted %s", s)
		}
	}
}
