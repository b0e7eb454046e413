package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/custody-dev/custody/internal/api"
)

// AppendIncident appends an incident record (admin token) and returns its
// ID. The server sets who recorded it from the token.
func (c *Client) AppendIncident(ctx context.Context, r *api.IncidentRecord) (int64, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("couldn't encode incident record: %w", err)
	}
	b, err := c.do(ctx, http.MethodPost, "/api/v1/incidents", "application/json", body)
	if err != nil {
		return 0, err
	}
	return api.DecodeIDAnswer(b, "incident")
}

// MaxIncidentRequestBytes is the most record bytes AppendIncidents puts in
// one request: below the server's default body cap (1 MiB), about 3,000
// quarantine records.
const MaxIncidentRequestBytes = 768 << 10

// AppendIncidents appends incident records (admin token) and returns their
// IDs in order. The records go in as few requests as fit: at most
// api.MaxIncidentBatch records and MaxIncidentRequestBytes of JSON each,
// halved again when the server answers 413 (a smaller body cap). Each
// request is all or none; when one fails, the records of the requests
// before it stay recorded and the error says how many.
func (c *Client) AppendIncidents(ctx context.Context, rs []*api.IncidentRecord) ([]int64, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	lines := make([]json.RawMessage, len(rs))
	for i, r := range rs {
		b, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("couldn't encode incident record: %w", err)
		}
		lines[i] = b
	}
	ids := make([]int64, 0, len(rs))
	for start := 0; start < len(lines); {
		end, size := start, 0
		for end < len(lines) && end-start < api.MaxIncidentBatch && (end == start || size+len(lines[end])+1 <= MaxIncidentRequestBytes) {
			size += len(lines[end]) + 1
			end++
		}
		got, err := c.appendIncidentBatch(ctx, lines[start:end])
		if err != nil {
			if len(ids) > 0 {
				return nil, fmt.Errorf("%w (the first %d of %d records were recorded)", err, len(ids), len(rs))
			}
			return nil, err
		}
		ids = append(ids, got...)
		start = end
	}
	return ids, nil
}

// appendIncidentBatch sends lines as one batch, split in halves while the
// server answers 413.
func (c *Client) appendIncidentBatch(ctx context.Context, lines []json.RawMessage) ([]int64, error) {
	body, err := json.Marshal(struct {
		Records []json.RawMessage `json:"records"`
	}{lines})
	if err != nil {
		return nil, fmt.Errorf("couldn't encode incident records: %w", err)
	}
	b, err := c.do(ctx, http.MethodPost, "/api/v1/incidents", "application/json", body)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusRequestEntityTooLarge && len(lines) > 1 {
		half := len(lines) / 2
		first, err := c.appendIncidentBatch(ctx, lines[:half])
		if err != nil {
			return nil, err
		}
		second, err := c.appendIncidentBatch(ctx, lines[half:])
		if err != nil {
			return nil, fmt.Errorf("%w (the first %d records of this batch were recorded)", err, len(first))
		}
		return append(first, second...), nil
	}
	if err != nil {
		return nil, err
	}
	return api.DecodeIDsAnswer(b, len(lines))
}

// Incidents returns the incident records matching q in the order the
// server recorded them. With q.Limit zero it pages through every match;
// otherwise it returns at most q.Limit records.
func (c *Client) Incidents(ctx context.Context, q api.IncidentQuery) ([]*api.IncidentRecord, error) {
	var out []*api.IncidentRecord
	after := q.AfterID
	for {
		v := url.Values{}
		for k, s := range map[string]string{"incident": q.Incident, "artifact": q.Artifact, "event": q.Event} {
			if s != "" {
				v.Set(k, s)
			}
		}
		limit := api.MaxLimit
		if q.Limit > 0 && q.Limit-len(out) < limit {
			limit = q.Limit - len(out)
		}
		v.Set("after", fmt.Sprint(after))
		v.Set("limit", fmt.Sprint(limit))
		b, err := c.do(ctx, http.MethodGet, "/api/v1/incidents?"+v.Encode(), "", nil)
		if err != nil {
			return nil, err
		}
		page, err := api.DecodeIncidentPage(b, after, limit)
		if err != nil {
			return nil, err
		}
		if n := len(page.Records); n > 0 {
			after = page.Records[n-1].ID
		}
		out = append(out, page.Records...)
		if len(page.Records) < limit || (q.Limit > 0 && len(out) >= q.Limit) {
			return out, nil
		}
	}
}
