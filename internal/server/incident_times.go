package server

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/custody-dev/custody/internal/store"
)

// maxClockSkew is how far ahead of the server's clock a client's times may
// be.
const maxClockSkew = time.Minute

// checkIncidentTimes refuses incident records that put an event in the
// future (beyond maxClockSkew of now): a record's time, and a report's
// compromise and opening times; and a report whose compromise began after
// the incident was opened. Such times would make the mean times to detect
// and to contain negative, or shift them for everyone.
func checkIncidentTimes(recs []*store.IncidentRecord, now time.Time) error {
	limit := now.Add(maxClockSkew)
	for i, r := range recs {
		at := ""
		if len(recs) > 1 {
			at = fmt.Sprintf("record %d: ", i)
		}
		if r.Time.After(limit) {
			return fmt.Errorf("%stime %s is in the future (server time %s)", at, r.Time.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		if r.Event != store.IncidentReported {
			continue
		}
		var rep struct {
			CompromisedSince time.Time `json:"compromisedSince"`
			OpenedAt         time.Time `json:"openedAt"`
		}
		if err := json.Unmarshal(r.Report, &rep); err != nil {
			return fmt.Errorf("%sreport: compromisedSince and openedAt must be RFC 3339 times", at)
		}
		switch {
		case rep.CompromisedSince.After(limit):
			return fmt.Errorf("%sreport: compromise time %s is in the future (server time %s)", at,
				rep.CompromisedSince.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		case rep.OpenedAt.After(limit):
			return fmt.Errorf("%sreport: opening time %s is in the future (server time %s)", at,
				rep.OpenedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		case !rep.OpenedAt.IsZero() && rep.CompromisedSince.After(rep.OpenedAt):
			return fmt.Errorf("%sreport: compromise time %s is after the incident was opened (%s)", at,
				rep.CompromisedSince.UTC().Format(time.RFC3339), rep.OpenedAt.UTC().Format(time.RFC3339))
		}
	}
	return nil
}
