package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
)

// specRefusal is what the owner got for a booking that breaks the interface spec:
// the error envelope with its errors array.
type specRefusal struct {
	Status    int    `json:"-"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
	Errors    []struct {
		In      string `json:"in"`
		At      string `json:"at"`
		Message string `json:"message"`
	} `json:"errors"`
	Failures float64 `json:"-"` // signgate_validation_failures_total of the route, after it
}

// Step 1 continued: the interface spec at the edge.
func (t *tour) spec(ctx context.Context, s *seen) error {
	t.p.heading("Step 1b · signgate holds bookings to the interface spec", `
The property and its providers agreed the booking API's interface spec before they
integrated (examples/orders.openapi.yaml: the phone's pattern, the services as an
enum, the appointment as an RFC 3339 date-time, no members but those listed).
signgate checks POST /api/orders against it (validate: {request: enforce}): a
booking that breaks it is refused at the edge, every problem listed where it is,
and the backend never sees it.`)

	t.p.note("A booking put together by hand, with four mistakes:")
	booking := map[string]string{
		"name":             "王芳",
		"phone":            "138 1234 5678",
		"address":          "幸福小區 3 棟 2 單元 501",
		"service_type":     "deep_cleaning",
		"appointment_time": "明天上午10點",
		"coupon":           "NEW-OWNER",
	}
	data, err := json.Marshal(booking)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", t.owner.base+"/api/orders", bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("X-Api-Key", t.owner.key)
	req.Header.Set("Authorization", "Bearer "+t.owner.bearer)
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.owner.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	r := &specRefusal{Status: resp.StatusCode}
	if err := json.NewDecoder(resp.Body).Decode(r); err != nil {
		return check(false, "the refused booking's answer is not the error envelope: %v", err)
	}
	s.SpecRefusal = r
	var at []string
	for _, e := range r.Errors {
		at = append(at, e.At)
	}
	if err := check(r.Status == 400 && r.Code == "bad_request" && slices.Equal(at, []string{"/appointment_time", "/coupon", "/phone", "/service_type"}),
		"the malformed booking: %d %s, errors at %q, want 400 bad_request naming /appointment_time, /coupon, /phone and /service_type",
		r.Status, r.Code, at); err != nil {
		return err
	}

	const series = `signgate_validation_failures_total{direction="request",route="orders-create"}`
	if r.Failures, err = metric(ctx, t.st.adminURL, series); err != nil {
		return err
	}
	t.p.note("The backend was not called. %s/metrics counts the refusal:\n\n    %s %v", t.st.adminURL, series, r.Failures)
	return nil
}
