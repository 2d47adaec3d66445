package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/tasks"
)

// standardReport decodes body as readJSON does.
func standardReport(body []byte) (api.ReportRequest, error) {
	var req api.ReportRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	return req, err
}

func fullReportRequest() api.ReportRequest {
	return api.ReportRequest{Worker: "w-1", Reports: []api.Report{
		{TaskRef: api.TaskRef{Job: "job-1", Index: 7, Attempt: 2}, Result: tasks.Result{ExitCode: -3, Stdout: []byte("7\n"), Stderr: []byte{0, 255},
			StdoutBlob: "blob", ErrorKind: "trap", Error: "unreachable", Duration: 1234 * time.Microsecond, Engine: "wazero"}},
		{TaskRef: api.TaskRef{Job: "job-1", Index: 8, Attempt: 1}, Result: tasks.Result{Stdout: []byte{}, Duration: -1}},
	}}
}

// TestFastDecodeReport_TakesWhatTheClientWrites: the body the Go client
// writes (json.Marshal), with every field set, takes the fast path and gives
// what encoding/json gives. A field added to api.Report that the fast path
// does not know makes it fall back, and this test fail.
func TestFastDecodeReport_TakesWhatTheClientWrites(t *testing.T) {
	for _, want := range []api.ReportRequest{fullReportRequest(), {Worker: "w", Reports: []api.Report{}}} {
		body, _ := json.Marshal(want)
		var got api.ReportRequest
		if !fastDecodeReport(body, &got) {
			t.Fatalf("the client's body %s did not take the fast path", body)
		}
		std, err := standardReport(body)
		if err != nil || !reflect.DeepEqual(got, std) {
			t.Fatalf("fast path gave %+v, encoding/json %+v (%v)", got, std, err)
		}
	}
}

// TestReadReportJSON_OtherShapesFallBack: bodies outside the plain shape
// decode as encoding/json decodes them, errors included.
func TestReadReportJSON_OtherShapesFallBack(t *testing.T) {
	for _, body := range []string{
		`{"worker":"w\u00e9","reports":[{"job":"j","index":1}]}`,         // an escape
		`{"Worker":"w","reports":[{"JOB":"j","index":1.0e0}]}`,           // other case; a float
		`{"worker":"w","reports":[{"job":"j"}],"reports":[{"index":2}]}`, // repeated: merged
		`{"worker":"w","reports":null}`,
		`{"worker":"w","extra":1}`,
		`{"worker":"w","reports":[{"job":"j","index":01}]}`,
		`{"worker":"w"} trailing`,
		`{"worker":"w"`,
	} {
		var fast api.ReportRequest
		err := readReportJSON(httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)), &fast)
		std, stdErr := standardReport([]byte(body))
		if (err == nil) != (stdErr == nil) || err != nil && !strings.Contains(err.Error(), stdErr.Error()) {
			t.Fatalf("%s: error %v, encoding/json %v", body, err, stdErr)
		}
		if err != nil && !errors.Is(err, errBadRequest) {
			t.Fatalf("%s: error %v is not a bad request", body, err)
		}
		if err == nil && !reflect.DeepEqual(fast, std) {
			t.Fatalf("%s: got %+v, encoding/json %+v", body, fast, std)
		}
	}
}

// FuzzReportFastPath: whatever body the fast path takes, encoding/json
// takes too and decodes to the same request.
func FuzzReportFastPath(f *testing.F) {
	body, _ := json.Marshal(fullReportRequest())
	f.Add(body)
	f.Add([]byte(` { "worker" : "w" , "reports" : [ { "index" : -0 , "stdout" : "" } ] } `))
	f.Add([]byte(`{"reports":[{"index":9223372036854775808,"attempt":-9223372036854775808,"exit_code":9223372036854775807}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast api.ReportRequest
		if !fastDecodeReport(body, &fast) {
			return
		}
		std, err := standardReport(body)
		if err != nil {
			t.Fatalf("the fast path took %q, which encoding/json refuses: %v", body, err)
		}
		if !reflect.DeepEqual(fast, std) {
			t.Fatalf("%q: fast %+v, encoding/json %+v", body, fast, std)
		}
	})
}

// BenchmarkReportBody: a report of eight tiny tasks, as a busy worker sends
// it, through encoding/json and through the fast path.
func BenchmarkReportBody(b *testing.B) {
	req := api.ReportRequest{Worker: "worker-0001"}
	for i := range 8 {
		req.Reports = append(req.Reports, api.Report{TaskRef: api.TaskRef{Job: "job-0123456789abcdef", Index: 100_000 + i, Attempt: 1},
			Result: tasks.Result{Stdout: []byte("100000\n"), Duration: 40 * time.Microsecond, Engine: "wazero"}})
	}
	body, _ := json.Marshal(req)
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := standardReport(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var got api.ReportRequest
			if !fastDecodeReport(body, &got) {
				b.Fatal("not taken")
			}
		}
	})
}
