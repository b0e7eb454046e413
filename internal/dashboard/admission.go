package dashboard

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/store"
)

// admissionWindow is how far back the environments page reads the
// admission webhook's decisions, and maxAdmissionRecords how many at most.
const (
	admissionWindow     = 7 * 24 * time.Hour
	maxAdmissionRecords = 20000
)

// admissionView is what the admission webhook's recorded decisions (VSAs
// signed by a decision signer) say about one environment over the window:
// the mode each namespace was last decided in, and how many FAILED
// decisions warn or audit mode admitted.
type admissionView struct {
	Namespaces []namespaceMode // by name
	// Admitted counts FAILED decisions recorded in warn or audit mode.
	Admitted int
	// Decisions counts the decisions read.
	Decisions int
	Window    time.Duration
	Truncated bool
}

type namespaceMode struct {
	Namespace, Mode string
	Time            time.Time
}

// vsaAdmission is what the dashboard reads of an admission VSA.
type vsaAdmission struct {
	VerificationResult string `json:"verificationResult"`
	Custody            *struct {
		Environment string `json:"environment"`
		Admission   *struct {
			Namespace string `json:"namespace"`
			Mode      string `json:"mode"`
		} `json:"admission"`
	} `json:"custody"`
}

// admissionModes reads the admission decisions of the window, by
// environment. Only VSAs whose verified signer (the index records the
// signer only from a verification that succeeded) is one of
// Config.DecisionSigners count: a VSA a builder pushed cannot change what
// the page says. Nil without DecisionSigners.
func (d *Dashboard) admissionModes(ctx context.Context) (map[string]*admissionView, error) {
	if d.cfg.DecisionSigners == nil {
		return nil, nil
	}
	signers := d.cfg.DecisionSigners()
	now := d.cfg.Now()
	out := map[string]*admissionView{}
	latest := map[[2]string]namespaceMode{}
	q := store.Query{PredicateType: attest.PredicateVSA, Since: now.Add(-admissionWindow), Limit: store.MaxLimit}
	read := 0
	for {
		page, err := d.cfg.Index.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, rec := range page {
			read++
			if !slices.Contains(signers, rec.SignerKeyID) {
				continue
			}
			d.addAdmission(out, latest, rec)
		}
		if len(page) < store.MaxLimit || read >= maxAdmissionRecords {
			for _, v := range out {
				v.Truncated = len(page) == store.MaxLimit
			}
			break
		}
		q.AfterID = page[len(page)-1].ID
	}
	for k, nm := range latest {
		out[k[0]].Namespaces = append(out[k[0]].Namespaces, nm)
	}
	for _, v := range out {
		v.Window = admissionWindow
		sort.Slice(v.Namespaces, func(i, j int) bool { return v.Namespaces[i].Namespace < v.Namespaces[j].Namespace })
	}
	return out, nil
}

// addAdmission adds one admission decision record (records come in ID
// order, so a later one is the newer).
func (d *Dashboard) addAdmission(out map[string]*admissionView, latest map[[2]string]namespaceMode, rec *store.Evidence) {
	st, err := statementOf(rec.Bundle)
	if err != nil {
		return
	}
	var p vsaAdmission
	if json.Unmarshal(st.Predicate, &p) != nil || p.Custody == nil || p.Custody.Admission == nil || p.Custody.Environment == "" {
		return // not the admission webhook's
	}
	env, adm := p.Custody.Environment, p.Custody.Admission
	v := out[env]
	if v == nil {
		v = &admissionView{}
		out[env] = v
	}
	v.Decisions++
	mode := adm.Mode
	if mode == "" {
		mode = "enforce" // recorded before modes existed
	}
	if p.VerificationResult == attest.VSAFailed && (mode == "warn" || mode == "audit") {
		v.Admitted++
	}
	at := rec.IntegratedTime
	if at.IsZero() {
		at = rec.IndexedAt
	}
	latest[[2]string{env, adm.Namespace}] = namespaceMode{Namespace: adm.Namespace, Mode: mode, Time: at}
}
