package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/custody-dev/custody/internal/store"
)

// AppendIncident appends an incident record (admin token) and returns its
// ID. The server sets who recorded it from the token.
func (c *Client) AppendIncident(ctx context.Context, r *store.IncidentRecord) (int64, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("couldn't encode incident record: %w", err)
	}
	b, err := c.do(ctx, http.MethodPost, "/api/v1/incidents", "application/json", body)
	if err != nil {
		return 0, err
	}
	var resp struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(b, &resp); err != nil || resp.ID <= 0 {
		return 0, errors.New("server answered a malformed incident response")
	}
	return resp.ID, nil
}

// Incidents returns the incident records matching q in the order the
// server recorded them. With q.Limit zero it pages through every match;
// otherwise it returns at most q.Limit records.
func (c *Client) Incidents(ctx context.Context, q store.IncidentQuery) ([]*store.IncidentRecord, error) {
	var out []*store.IncidentRecord
	after := q.AfterID
	for {
		v := url.Values{}
		for k, s := range map[string]string{"incident": q.Incident, "artifact": q.Artifact, "event": q.Event} {
			if s != "" {
				v.Set(k, s)
			}
		}
		limit := store.MaxLimit
		if q.Limit > 0 && q.Limit-len(out) < limit {
			limit = q.Limit - len(out)
		}
		v.Set("after", fmt.Sprint(after))
		v.Set("limit", fmt.Sprint(limit))
		b, err := c.do(ctx, http.MethodGet, "/api/v1/incidents?"+v.Encode(), "", nil)
		if err != nil {
			return nil, err
		}
		var page struct {
			Records []*store.IncidentRecord `json:"records"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return nil, errors.New("server answered a malformed incidents response")
		}
		if len(page.Records) > limit {
			return nil, errors.New("server answered more incident records than asked for")
		}
		for _, r := range page.Records {
			if r == nil || r.ID <= after {
				return nil, errors.New("server answered incident records out of order")
			}
			after = r.ID
			out = append(out, r)
		}
		if len(page.Records) < limit || (q.Limit > 0 && len(out) >= q.Limit) {
			return out, nil
		}
	}
}
