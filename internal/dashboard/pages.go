package dashboard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tlog"
)

// searchFields are the fields the search page can match, in the order the
// "any" search tries them.
var searchFields = []struct{ Name, Label string }{
	{"digest", "digest"},
	{"name", "artifact name"},
	{"commit", "source commit"},
	{"builder", "builder ID"},
	{"key", "signer key ID"},
	{"identity", "signer identity"},
}

const searchLimit = 200

type searchView struct {
	Q, Field string
	Fields   []struct{ Name, Label string }
	Results  []*store.Evidence
	Problem  string
	More     bool
}

func queryFor(field, q string) (store.Query, bool) {
	switch field {
	case "digest":
		if !strings.Contains(q, ":") {
			q = "sha256:" + q
		}
		return store.Query{Digest: strings.ToLower(q)}, true
	case "name":
		return store.Query{SubjectName: q}, true
	case "commit":
		return store.Query{SourceCommit: q}, true
	case "builder":
		return store.Query{BuilderID: q}, true
	case "key":
		return store.Query{SignerKeyID: q}, true
	case "identity":
		return store.Query{SignerIdentity: q}, true
	}
	return store.Query{}, false
}

func (d *Dashboard) search(r *http.Request) view {
	sv := searchView{Q: strings.TrimSpace(r.URL.Query().Get("q")), Field: r.URL.Query().Get("field"), Fields: searchFields}
	if sv.Field == "" {
		sv.Field = "any"
	}
	if sv.Q == "" {
		return view{name: "search", title: "Search", data: sv}
	}
	fields := []string{sv.Field}
	if sv.Field == "any" {
		fields = nil
		for _, f := range searchFields {
			fields = append(fields, f.Name)
		}
	}
	seen := map[int64]bool{}
	for _, f := range fields {
		q, ok := queryFor(f, sv.Q)
		if !ok {
			return fail(http.StatusBadRequest, "unknown search field")
		}
		q.Limit = searchLimit + 1
		res, err := d.cfg.Index.Search(r.Context(), q)
		if errors.Is(err, store.ErrInvalidQuery) {
			if sv.Field != "any" {
				sv.Problem = err.Error()
			}
			continue
		}
		if err != nil {
			return fail(http.StatusInternalServerError, "couldn't search: "+err.Error())
		}
		for _, e := range res {
			if !seen[e.ID] {
				seen[e.ID] = true
				sv.Results = append(sv.Results, e)
			}
		}
	}
	sort.Slice(sv.Results, func(i, j int) bool { return sv.Results[i].ID > sv.Results[j].ID })
	if len(sv.Results) > searchLimit {
		sv.Results, sv.More = sv.Results[:searchLimit], true
	}
	return view{name: "search", title: "Search", data: sv}
}

type historyCheck struct {
	Size   uint64
	Pass   bool
	Reason string
}

type witnessView struct {
	Name   string
	Signed bool
}

type logView struct {
	Checkpoint *tlog.Checkpoint
	Note       string
	Witnesses  []witnessView
	History    []historyCheck
	Checked    int
	Published  int
	Problem    string
}

func (d *Dashboard) logData(ctx context.Context) logView {
	var lv logView
	cp, err := d.cfg.Log.Checkpoint(ctx)
	if err != nil {
		lv.Problem = "couldn't read the checkpoint: " + err.Error()
		return lv
	}
	lv.Checkpoint, lv.Note = cp, string(cp.Note)
	for _, w := range d.cfg.Witnesses {
		wv := witnessView{Name: w.Name()}
		if d.cfg.LogVerifier != nil {
			n, err := note.Open(cp.Note, note.VerifierList(d.cfg.LogVerifier, w))
			if err == nil {
				for _, s := range n.Sigs {
					wv.Signed = wv.Signed || (s.Name == w.Name() && s.Hash == w.KeyHash())
				}
			}
		}
		lv.Witnesses = append(lv.Witnesses, wv)
	}
	if d.cfg.LogHistory == nil {
		return lv
	}
	sizes, err := d.cfg.LogHistory()
	if err != nil {
		lv.Problem = "couldn't list the checkpoint history: " + err.Error()
		return lv
	}
	sort.Slice(sizes, func(i, j int) bool { return sizes[i] > sizes[j] })
	lv.Published = len(sizes)
	for _, size := range sizes {
		if size > cp.Size || len(lv.History) >= MaxHistoryChecks {
			continue
		}
		hc := historyCheck{Size: size, Pass: true, Reason: "consistent with the current checkpoint"}
		old, err := d.cfg.Log.CheckpointAt(size)
		switch {
		case err != nil:
			hc.Pass, hc.Reason = false, "couldn't read: "+err.Error()
		case size == cp.Size:
			if !bytes.Equal(old.Hash, cp.Hash) {
				hc.Pass, hc.Reason = false, "same size, different root hash: the log forked"
			} else {
				hc.Reason = "the current checkpoint"
			}
		case size == 0:
			hc.Reason = "empty tree"
		default:
			proof, err := d.cfg.Log.ConsistencyProof(ctx, size, cp.Size)
			if err == nil {
				err = tlog.VerifyConsistency(old, cp, proof)
			}
			if err != nil {
				hc.Pass, hc.Reason = false, fmt.Sprintf("not consistent: %v", err)
				d.rec.failure(d.cfg.Now(), "log inconsistent")
			}
		}
		lv.History = append(lv.History, hc)
	}
	lv.Checked = len(lv.History)
	return lv
}

func (d *Dashboard) logPage(r *http.Request) view {
	return view{name: "log", title: "Log", data: d.logData(r.Context())}
}
