package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/tasks"
)

// leaseRequestBeforeReports is api.LeaseRequest as servers before
// LeaseRequest.Reports decode it.
type leaseRequestBeforeReports struct {
	Worker  string        `json:"worker"`
	Address string        `json:"address,omitempty"`
	Cores   int           `json:"cores,omitempty"`
	Max     int           `json:"max"`
	Wait    time.Duration `json:"wait_ns,omitempty"`
	Engines []string      `json:"engines,omitempty"`
	Storage bool          `json:"storage,omitempty"`
}

// oldLeaseServer answers leases as a server before LeaseRequest.Reports
// does: its readJSON refuses unknown fields with a 400 naming them, and its
// answer has no accepted list. It counts the leases it granted.
func oldLeaseServer(t *testing.T, granted *int) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req leaseRequestBeforeReports
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, api.Error{Error: "bad request: body: " + err.Error()})
			return
		}
		*granted++
		writeJSON(w, http.StatusOK, map[string]any{"tasks": []api.Assignment{{Job: "j", Index: 0, Attempt: 1}}})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestLeaseWithReports_OldServerIsNamed: a server that predates reports on
// a lease refuses such a call whole, which LeaseWithReports returns as
// ErrReportsNotCarried (nothing leased); the same call without reports
// leases as before.
func TestLeaseWithReports_OldServerIsNamed(t *testing.T) {
	var granted int
	c := New(oldLeaseServer(t, &granted).URL, "")
	rep := api.Report{TaskRef: api.TaskRef{Job: "j", Index: 3, Attempt: 1}, Result: tasks.Result{Stdout: []byte("3")}}
	_, err := c.LeaseWithReports(context.Background(), &api.LeaseRequest{Worker: "w", Max: 1, Reports: []api.Report{rep}})
	if !errors.Is(err, ErrReportsNotCarried) || granted != 0 {
		t.Fatalf("lease with reports to an old server: %v (%d granted), want ErrReportsNotCarried and nothing granted", err, granted)
	}
	resp, err := c.LeaseWithReports(context.Background(), &api.LeaseRequest{Worker: "w", Max: 1})
	if err != nil || len(resp.Tasks) != 1 || resp.Accepted != nil || granted != 1 {
		t.Fatalf("lease without reports to an old server: %+v, %v", resp, err)
	}
}

// TestLeaseWithReports_OtherRefusalsAreNotMistakenForAnOldServer: a 400
// about anything else is returned as it is.
func TestLeaseWithReports_OtherRefusalsAreNotMistakenForAnOldServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusBadRequest, api.Error{Error: `bad request: body: json: unknown field "hash"`})
	}))
	defer srv.Close()
	rep := api.Report{TaskRef: api.TaskRef{Job: "j", Index: 3, Attempt: 1}}
	_, err := New(srv.URL, "").LeaseWithReports(context.Background(), &api.LeaseRequest{Worker: "w", Max: 1, Reports: []api.Report{rep}})
	var se *StatusError
	if errors.Is(err, ErrReportsNotCarried) || !errors.As(err, &se) || se.Code != http.StatusBadRequest {
		t.Fatalf("a 400 about a report's field: %v", err)
	}
}

// TestLeaseWithReports_AnswerCarriesAccepted: the accepted list of the
// answer reaches the caller beside the tasks.
func TestLeaseWithReports_AnswerCarriesAccepted(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.LeaseResponse{Tasks: []api.Assignment{{Job: "j", Index: 9}}, Accepted: []bool{true, false}})
	}))
	defer srv.Close()
	resp, err := New(srv.URL, "").LeaseWithReports(context.Background(), &api.LeaseRequest{Worker: "w", Max: 1, Reports: make([]api.Report, 2)})
	if err != nil || !reflect.DeepEqual(resp.Accepted, []bool{true, false}) || len(resp.Tasks) != 1 {
		t.Fatalf("answer %+v, %v", resp, err)
	}
}
