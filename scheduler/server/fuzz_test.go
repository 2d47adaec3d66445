package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// The request bodies FuzzRequestBodies drives, by its first argument.
const (
	fuzzSubmit = iota
	fuzzReport
	fuzzHeartbeat
	fuzzKinds
)

var fuzzModule = []byte("\x00asm\x01\x00\x00\x00fuzz")

// FuzzRequestBodies feeds the API's request decoding arbitrary bodies for
// a submit, a report and a heartbeat, as the server decodes them (readJSON
// and the checks that need no ledger), and what passes on to Apply, as the
// leader would propose it, in a ledger holding a job leased to the worker
// and a submitter with the default quotas. It must never panic; a body the
// server refuses must be refused as the client's fault (4xx), never 500;
// an accepted submit must create a job within the submitter's quotas or be
// refused by a rule; a report gets one answer per report.
func FuzzRequestBodies(f *testing.F) {
	spec := tasks.JobSpec{Name: "j", ModuleHash: storage.Hash(fuzzModule), Tasks: 3, Timeout: time.Minute,
		Memory: tasks.DefaultMemory, MaxOutput: tasks.DefaultMaxOutput, Retries: 2}
	seeds := []struct {
		kind uint8
		body any
	}{
		{fuzzSubmit, api.SubmitRequest{Spec: spec, RequestID: "r1"}},
		{fuzzSubmit, `{"spec":{"name":"x","module":"` + spec.ModuleHash + `","tasks":10000000,"timeout":9223372036854775807,"memory":1,"max_output":1,"retries":-1,"priority":1000}}`},
		{fuzzReport, api.ReportRequest{Worker: "w1", Reports: []api.Report{{TaskRef: api.TaskRef{Job: "j", Index: 1, Attempt: 1}, Result: tasks.Result{Stdout: []byte("out")}}}}},
		{fuzzReport, `{"worker":"w1","reports":[{"job":"j","index":-1,"attempt":1,"error_kind":"trap"},{"job":"j","index":99999999999}]}`},
		{fuzzHeartbeat, api.HeartbeatRequest{Worker: "w1", Cores: 4, Running: []api.TaskRef{{Job: "j", Index: 0, Attempt: 1}}, Engines: []string{"wazero"}}},
		{fuzzHeartbeat, `{"worker":"w1","cores":-5,"held":null,"unknown":1}`},
	}
	for _, s := range seeds {
		body, ok := s.body.(string)
		if !ok {
			b, _ := json.Marshal(s.body)
			body = string(b)
		}
		f.Add(s.kind, []byte(body))
	}
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		switch kind % fuzzKinds {
		case fuzzSubmit:
			fuzzSubmitBody(t, r, spec)
		case fuzzReport:
			fuzzReportBody(t, r, spec)
		case fuzzHeartbeat:
			var req api.HeartbeatRequest
			if err := readJSON(r, &req); err != nil {
				wantClientError(t, err)
			}
		}
	})
}

// wantClientError fails unless err maps to a 4xx status.
func wantClientError(t *testing.T, err error) {
	t.Helper()
	rec := httptest.NewRecorder()
	writeErr(rec, err)
	if rec.Code < 400 || rec.Code >= 500 {
		t.Fatalf("error %v answered %d, want a 4xx", err, rec.Code)
	}
}

// fuzzLedger is a ledger with the module, a submitter with the default
// quotas, and job j (spec) with its first two tasks leased to w1.
func fuzzLedger(t *testing.T, spec tasks.JobSpec) *ledger.FSM {
	f := ledger.NewFSM()
	for _, c := range []ledger.Command{
		&ledger.PutBlobCommand{Hash: storage.Hash(fuzzModule), Data: fuzzModule},
		&ledger.CreateCredentialCommand{Credential: ledger.Credential{ID: "t-sub", Role: api.CredSubmitter, Hash: "h"}},
		&ledger.SubmitJobCommand{ID: "j", Spec: spec, Owner: "t-sub"},
		&ledger.LeaseTasksCommand{Worker: "w1", Max: 2, Now: 1},
	} {
		if resp := applyCommand(t, f, c); resp != nil && fmt.Sprint(resp) != "j" {
			if _, ok := resp.([]ledger.Grant); !ok {
				t.Fatalf("setting up: %v", resp)
			}
		}
	}
	return f
}

func applyCommand(t *testing.T, f *ledger.FSM, c ledger.Command) any {
	data, err := ledger.Encode(c)
	if err != nil {
		t.Fatalf("encode %T: %v", c, err)
	}
	return f.Apply(data)
}

func fuzzSubmitBody(t *testing.T, r *http.Request, spec tasks.JobSpec) {
	req, err := decodeSubmit(r)
	if err != nil {
		wantClientError(t, err)
		return
	}
	f := fuzzLedger(t, spec)
	resp := applyCommand(t, f, &ledger.SubmitJobCommand{ID: "new", Spec: req.Spec, Now: 2, RequestID: req.RequestID, Owner: "t-sub"})
	switch resp := resp.(type) {
	case error:
		wantClientError(t, resp)
	case string:
		if req.Spec.Tasks > int(api.SubmitterQuotas.MaxTasksPerJob) || req.Spec.Priority > api.SubmitterQuotas.MaxPriority {
			t.Fatalf("a submitter's job past its quotas was created: %+v", req.Spec)
		}
	default:
		t.Fatalf("submit answered %T %v", resp, resp)
	}
}

func fuzzReportBody(t *testing.T, r *http.Request, spec tasks.JobSpec) {
	req, err := readBody(r, decodeReportBody)
	if err != nil {
		wantClientError(t, err)
		return
	}
	f := fuzzLedger(t, spec)
	resp := applyCommand(t, f, &ledger.CompleteTasksCommand{Worker: "w1", Now: 2, Reports: req.Reports})
	accepted, ok := resp.([]bool)
	if !ok || len(accepted) != len(req.Reports) {
		t.Fatalf("%d reports answered %v", len(req.Reports), resp)
	}
	if strings.Contains(fmt.Sprint(accepted), "true") {
		var st *api.JobStatus
		f.View(func(l *ledger.Ledger) { st, _ = l.JobStatus("j") })
		if st == nil || st.Done+st.Failed+st.Queued+st.Leased != st.Tasks {
			t.Fatalf("after accepted reports the job's counts do not add up: %+v", st)
		}
	}
}
