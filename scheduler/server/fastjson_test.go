package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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

// fillAssignmentFields sets every field of v to a distinct non-zero value
// (one entry per map, two per slice), so a field the hand-written lease
// encoder forgets shows as a difference from encoding/json.
func fillAssignmentFields(t *testing.T, v reflect.Value, seed *int) {
	*seed++
	n := *seed
	switch {
	case v.Type() == reflect.TypeOf(time.Time{}):
		v.Set(reflect.ValueOf(time.Date(2026, 12, 5, 21, 0, n, 123456789, time.UTC)))
	case v.Kind() == reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			fillAssignmentFields(t, v.Field(i), seed)
		}
	case v.Kind() == reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := 0; i < 2; i++ {
			fillAssignmentFields(t, v.Index(i), seed)
		}
	case v.Kind() == reflect.Map:
		m := reflect.MakeMap(v.Type())
		for i := 0; i < 2; i++ {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fillAssignmentFields(t, k, seed)
			fillAssignmentFields(t, e, seed)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case v.Kind() == reflect.String:
		v.SetString(fmt.Sprintf("s%d", n))
	case v.CanInt():
		v.SetInt(int64(n) * 1_000_003)
	case v.CanUint():
		v.SetUint(uint64(n) * 1_000_003)
	case v.Kind() == reflect.Bool:
		v.SetBool(true)
	default:
		t.Fatalf("fillAssignmentFields: %s has no filler: teach the test and the encoder", v.Type())
	}
}

func standardJSON(v any) []byte {
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(v)
	return buf.Bytes()
}

// TestLeaseResponse_FastPathWritesWhatEncodingJSONWrites: a response with
// every field of every assignment set, and ones with the omitempty fields
// empty, are written byte for byte as encoding/json writes them. A field
// added to api.Assignment that the encoder does not write fails here.
func TestLeaseResponse_FastPathWritesWhatEncodingJSONWrites(t *testing.T) {
	var full api.LeaseResponse
	seed := 0
	fillAssignmentFields(t, reflect.ValueOf(&full).Elem(), &seed)
	sparse := api.LeaseResponse{Tasks: []api.Assignment{{Job: "j", Index: 0, Attempt: 1, ModuleHash: "m", Name: "n", Expiry: time.Unix(0, 5)}}}
	answered := api.LeaseResponse{Accepted: []bool{true, false}}
	for _, resp := range []api.LeaseResponse{full, sparse, {Tasks: []api.Assignment{}}, {}, answered, {Tasks: sparse.Tasks, Accepted: []bool{false}}} {
		got, ok := appendLeaseResponse(nil, &resp)
		if want := standardJSON(resp); !ok || !bytes.Equal(got, want) {
			t.Fatalf("fast path (taken %v):\n%s\nencoding/json:\n%s", ok, got, want)
		}
	}
}

// TestLeaseResponse_OtherStringsFallBack: a string JSON would escape, and a
// time encoding/json refuses, are left to encoding/json.
func TestLeaseResponse_OtherStringsFallBack(t *testing.T) {
	for _, a := range []api.Assignment{
		{Args: []string{"a<b"}}, {Env: map[string]string{"K": "é"}}, {Name: `q"`}, {Job: "\n"},
		{Expiry: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if _, ok := appendLeaseResponse(nil, &api.LeaseResponse{Tasks: []api.Assignment{a}}); ok {
			t.Fatalf("%+v took the fast path", a)
		}
	}
	rec := httptest.NewRecorder()
	resp := api.LeaseResponse{Tasks: []api.Assignment{{Args: []string{"a<b&c"}}}}
	writeLeaseResponse(rec, resp)
	if !bytes.Equal(rec.Body.Bytes(), standardJSON(resp)) || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("fallback wrote %q (%s)", rec.Body.Bytes(), rec.Header().Get("Content-Type"))
	}
}

// FuzzLeaseResponseFastPath: whatever the fast path writes is byte for byte
// what encoding/json writes.
func FuzzLeaseResponseFastPath(f *testing.F) {
	f.Add("job", "{index}", "KEY", "value", []byte("in"), int64(1e18), uint64(7))
	f.Add("j<", "é", "", "", []byte{}, int64(-1), uint64(0))
	f.Fuzz(func(t *testing.T, job, arg, key, val string, stdin []byte, expiry int64, seed uint64) {
		resp := api.LeaseResponse{Tasks: []api.Assignment{{Job: job, Args: []string{arg}, Env: map[string]string{key: val}, Stdin: stdin,
			Seed: seed, Expiry: time.Unix(0, expiry).UTC(), Timeout: time.Duration(expiry)}}}
		got, ok := appendLeaseResponse(nil, &resp)
		if ok && !bytes.Equal(got, standardJSON(resp)) {
			t.Fatalf("fast path:\n%s\nencoding/json:\n%s", got, standardJSON(resp))
		}
	})
}

// BenchmarkLeaseResponse: a lease of eight tiny tasks written by
// encoding/json and by the fast path.
func BenchmarkLeaseResponse(b *testing.B) {
	var resp api.LeaseResponse
	for i := range 8 {
		resp.Tasks = append(resp.Tasks, api.Assignment{Job: "job-0123456789abcdef", Index: 100_000 + i, Attempt: 1, ModuleHash: strings.Repeat("ab", 32),
			Name: "tiny", Args: []string{fmt.Sprint(100_000 + i)}, Seed: 1 << 60, Timeout: time.Minute, Memory: 64 << 20, MaxOutput: 1 << 20,
			Expiry: time.Now()})
	}
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			standardJSON(resp)
		}
	})
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := appendLeaseResponse(make([]byte, 0, 400*len(resp.Tasks)+16), &resp); !ok {
				b.Fatal("not taken")
			}
		}
	})
}

func standardHeartbeat(body []byte) (api.HeartbeatRequest, error) {
	var req api.HeartbeatRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	return req, err
}

// TestFastDecodeHeartbeat_TakesWhatTheClientWrites: heartbeats as the Go
// worker writes them, one with every field set (a field added to
// api.HeartbeatRequest that the fast path does not know fails here) and one
// holding nothing, take the fast path and decode as encoding/json does.
func TestFastDecodeHeartbeat_TakesWhatTheClientWrites(t *testing.T) {
	var full api.HeartbeatRequest
	seed := 0
	fillAssignmentFields(t, reflect.ValueOf(&full).Elem(), &seed)
	for _, hb := range []api.HeartbeatRequest{full, {Worker: "w"}, {Worker: "w", Held: []api.TaskRef{}}} {
		body, _ := json.Marshal(hb)
		var got api.HeartbeatRequest
		if !fastDecodeHeartbeat(body, &got) {
			t.Fatalf("the client's body %s did not take the fast path", body)
		}
		std, err := standardHeartbeat(body)
		if err != nil || !reflect.DeepEqual(got, std) {
			t.Fatalf("fast path gave %+v, encoding/json %+v (%v)", got, std, err)
		}
	}
	for _, body := range []string{`{"worker":"w","paused":1}`, `{"worker":"w","held":[{"job":"j","index":1}],"held":[]}`, `{"worker":"w","engines":["\u0041"]}`} {
		var got api.HeartbeatRequest
		if fastDecodeHeartbeat([]byte(body), &got) {
			t.Fatalf("%s took the fast path", body)
		}
	}
}

// FuzzHeartbeatFastPath: whatever body the fast path takes, encoding/json
// takes too and decodes to the same heartbeat.
func FuzzHeartbeatFastPath(f *testing.F) {
	body, _ := json.Marshal(api.HeartbeatRequest{Worker: "w", Address: "a", Cores: 2, Running: []api.TaskRef{{Job: "j", Index: 1, Attempt: 1}},
		Held: []api.TaskRef{{Job: "j", Index: 1, Attempt: 1}, {Job: "j", Index: 2, Attempt: 1}}, Engines: []string{"wazero"}, Paused: true})
	f.Add(body)
	f.Add([]byte(`{"worker":"w","held":null,"running":[],"draining":false,"storage":true,"storage_only":false}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast api.HeartbeatRequest
		if !fastDecodeHeartbeat(body, &fast) {
			return
		}
		std, err := standardHeartbeat(body)
		if err != nil {
			t.Fatalf("the fast path took %q, which encoding/json refuses: %v", body, err)
		}
		if !reflect.DeepEqual(fast, std) {
			t.Fatalf("%q: fast %+v, encoding/json %+v", body, fast, std)
		}
	})
}

func standardLease(body []byte) (api.LeaseRequest, error) {
	var req api.LeaseRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	return req, err
}

// TestFastDecodeLease_TakesWhatTheClientWrites: leases as the Go worker
// writes them, one with every field set (a field added to api.LeaseRequest
// or api.Report that the fast path does not know fails here), one carrying
// the full report request's reports and one bare, take the fast path and
// decode as encoding/json does.
func TestFastDecodeLease_TakesWhatTheClientWrites(t *testing.T) {
	var full api.LeaseRequest
	seed := 0
	fillAssignmentFields(t, reflect.ValueOf(&full).Elem(), &seed)
	reports := api.LeaseRequest{Worker: "w", Max: 8, Wait: time.Second, Reports: fullReportRequest().Reports}
	for _, lease := range []api.LeaseRequest{full, reports, {Worker: "w", Max: 1}} {
		body, _ := json.Marshal(lease)
		var got api.LeaseRequest
		if !fastDecodeLease(body, &got) {
			t.Fatalf("the client's body %s did not take the fast path", body)
		}
		std, err := standardLease(body)
		if err != nil || !reflect.DeepEqual(got, std) {
			t.Fatalf("fast path gave %+v, encoding/json %+v (%v)", got, std, err)
		}
	}
}

// TestReadLeaseJSON_OtherShapesFallBack: lease bodies outside the plain
// shape decode as encoding/json decodes them, errors included; a report
// that brings its own hash is refused naming the field, as on
// POST /v1/report.
func TestReadLeaseJSON_OtherShapesFallBack(t *testing.T) {
	for _, body := range []string{
		`{"worker":"w","max":1,"reports":[{"job":"j","index":1,"hash":"abc"}]}`,
		`{"worker":"w\u00e9","max":1,"reports":[{"job":"j","index":1}]}`,
		`{"worker":"w","max":1,"reports":null}`,
		`{"worker":"w","max":1.5}`,
		`{"worker":"w","max":1,"reports":[{"job":"j"}],"reports":[{"index":2}]}`,
		`{"worker":"w","max":1,"wait_ns":"1s"}`,
		`{"worker":"w","max":1} trailing`,
	} {
		var fast api.LeaseRequest
		err := readLeaseJSON(httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)), &fast)
		std, stdErr := standardLease([]byte(body))
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
	err := readLeaseJSON(httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"worker":"w","max":1,"reports":[{"job":"j","hash":"abc"}]}`)), &api.LeaseRequest{})
	if err == nil || !strings.Contains(err.Error(), `unknown field "hash"`) {
		t.Fatalf("a carried report with a hash: %v, want the field named", err)
	}
}

// FuzzLeaseFastPath: whatever lease body the fast path takes,
// encoding/json takes too and decodes to the same request.
func FuzzLeaseFastPath(f *testing.F) {
	body, _ := json.Marshal(api.LeaseRequest{Worker: "w", Address: "a", Cores: 4, Max: 8, Wait: time.Second, Engines: []string{"wazero"},
		Storage: true, Reports: fullReportRequest().Reports})
	f.Add(body)
	f.Add([]byte(`{"worker":"w","max":1,"reports":[],"engines":null,"wait_ns":-0}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast api.LeaseRequest
		if !fastDecodeLease(body, &fast) {
			return
		}
		std, err := standardLease(body)
		if err != nil {
			t.Fatalf("the fast path took %q, which encoding/json refuses: %v", body, err)
		}
		if !reflect.DeepEqual(fast, std) {
			t.Fatalf("%q: fast %+v, encoding/json %+v", body, fast, std)
		}
	})
}

// TestHeartbeatResponse_FastPathWritesWhatEncodingJSONWrites: a heartbeat's
// answer with every field but the repair orders set, and ones with the
// omitempty fields empty, are written byte for byte as encoding/json
// writes them. A field added to api.HeartbeatResponse that the fast path
// does not write fails here.
func TestHeartbeatResponse_FastPathWritesWhatEncodingJSONWrites(t *testing.T) {
	var full api.HeartbeatResponse
	seed := 0
	v := reflect.ValueOf(&full).Elem()
	for i := range v.NumField() {
		if v.Type().Field(i).Name != "Repairs" { // left to encoding/json
			fillAssignmentFields(t, v.Field(i), &seed)
		}
	}
	stale := []api.TaskRef{{Job: "j-0a1b", Index: 3, Attempt: 2}}
	for _, resp := range []api.HeartbeatResponse{full, {}, {TTL: time.Second}, {PauseKeep: time.Minute}, {Distrusted: true},
		{Stale: stale}, {Stale: stale, Distrusted: true}, {Stale: []api.TaskRef{}, TTL: -1}} {
		got, ok := appendHeartbeatResponse(nil, &resp)
		if want := standardJSON(resp); !ok || !bytes.Equal(got, want) {
			t.Fatalf("fast path (taken %v):\n%s\nencoding/json:\n%s", ok, got, want)
		}
	}
}

// TestHeartbeatResponse_OtherShapesFallBack: repair orders, and a stale
// task whose job id JSON would escape, are left to encoding/json, and the
// answer is still what encoding/json writes.
func TestHeartbeatResponse_OtherShapesFallBack(t *testing.T) {
	for _, resp := range []api.HeartbeatResponse{
		{Repairs: []api.RepairOrder{{Blob: "b"}}, TTL: time.Second},
		{Stale: []api.TaskRef{{Job: "a<b"}}},
		{Stale: []api.TaskRef{{Job: "é"}}},
	} {
		if _, ok := appendHeartbeatResponse(nil, &resp); ok {
			t.Fatalf("%+v took the fast path", resp)
		}
		rec := httptest.NewRecorder()
		writeHeartbeatResponse(rec, &resp)
		if !bytes.Equal(rec.Body.Bytes(), standardJSON(resp)) || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("fallback wrote %q (%s)", rec.Body.Bytes(), rec.Header().Get("Content-Type"))
		}
	}
}

// FuzzHeartbeatResponseFastPath: whatever the fast path writes is byte for
// byte what encoding/json writes.
func FuzzHeartbeatResponseFastPath(f *testing.F) {
	f.Add("j-0a1b", 3, 1, int64(15e9), int64(0), true)
	f.Add("j<", -1, 0, int64(-1), int64(7), false)
	f.Fuzz(func(t *testing.T, job string, index, attempt int, ttl, keep int64, distrusted bool) {
		resp := api.HeartbeatResponse{Stale: []api.TaskRef{{Job: job, Index: index, Attempt: attempt}}, TTL: time.Duration(ttl),
			PauseKeep: time.Duration(keep), Distrusted: distrusted}
		got, ok := appendHeartbeatResponse(nil, &resp)
		if ok && !bytes.Equal(got, standardJSON(resp)) {
			t.Fatalf("fast path:\n%s\nencoding/json:\n%s", got, standardJSON(resp))
		}
	})
}

// TestReadHotBody_ReadsWhatWasSentWhateverItsFraming: a hot body is read
// whole with a Content-Length and chunked alike; one shorter than its
// Content-Length is an error, never a short body taken as whole.
func TestReadHotBody_ReadsWhatWasSentWhateverItsFraming(t *testing.T) {
	const body = `{"worker":"w-1","cores":4}`
	sized := httptest.NewRequest(http.MethodPost, "/v1/heartbeat", strings.NewReader(body))
	chunked := httptest.NewRequest(http.MethodPost, "/v1/heartbeat", strings.NewReader(body))
	chunked.ContentLength = -1
	for _, r := range []*http.Request{sized, chunked} {
		got, err := readHotBody(r)
		if err != nil || string(got) != body {
			t.Fatalf("Content-Length %d: read %q, %v", r.ContentLength, got, err)
		}
	}
	short := httptest.NewRequest(http.MethodPost, "/v1/heartbeat", strings.NewReader(body))
	short.ContentLength = int64(len(body) + 1)
	if got, err := readHotBody(short); err == nil {
		t.Fatalf("a body shorter than its Content-Length was read as %q", got)
	}
}

// FuzzHeartbeatLikeFastPath: decoding a heartbeat with the strings of the
// one before it (a stream's hints) gives what decoding it alone gives,
// whatever the two bodies, and leaves the hints naming its own strings.
func FuzzHeartbeatLikeFastPath(f *testing.F) {
	same, _ := json.Marshal(api.HeartbeatRequest{Worker: "w", Address: "a", Cores: 2, Held: []api.TaskRef{}, Engines: []string{"wazero", "wasmtime"}})
	f.Add(same, same)
	f.Add(same, []byte(`{"worker":"w","engines":["wazero"],"held":[]}`))
	f.Add([]byte(`{"worker":"v","engines":null}`), []byte(`{"worker":"w","engines":[],"address":"a"}`))
	f.Fuzz(func(t *testing.T, prev, body []byte) {
		var hints workerHints
		var first api.HeartbeatRequest
		fastDecodeHeartbeatLike(prev, &first, &hints)
		var alone, like api.HeartbeatRequest
		okAlone := fastDecodeHeartbeat(body, &alone)
		if okLike := fastDecodeHeartbeatLike(body, &like, &hints); okLike != okAlone {
			t.Fatalf("%q after %q: with hints %v, alone %v", body, prev, okLike, okAlone)
		}
		if !okAlone {
			return
		}
		if !reflect.DeepEqual(like, alone) {
			t.Fatalf("%q after %q: with hints %+v, alone %+v", body, prev, like, alone)
		}
		if hints.worker != like.Worker || hints.address != like.Address || !reflect.DeepEqual(hints.engines, like.Engines) {
			t.Fatalf("hints %+v after %+v", hints, like)
		}
	})
}

// TestFastDecodeHeartbeatLike_SharesTheStringsItHasSeen: a stream's
// heartbeat like the one before it (the same worker, address, engines,
// empty lists) is decoded without allocating.
func TestFastDecodeHeartbeatLike_SharesTheStringsItHasSeen(t *testing.T) {
	body, _ := json.Marshal(api.HeartbeatRequest{Worker: "w-0042", Address: "10.0.0.9:7000", Cores: 4, Running: []api.TaskRef{}, Held: []api.TaskRef{}, Engines: []string{"wazero", "wasmtime"}})
	var hints workerHints
	var req api.HeartbeatRequest
	if !fastDecodeHeartbeatLike(body, &req, &hints) {
		t.Fatalf("%s: not the fast path", body)
	}
	allocs := testing.AllocsPerRun(100, func() {
		req = api.HeartbeatRequest{}
		if !fastDecodeHeartbeatLike(body, &req, &hints) {
			t.Fatal("not the fast path")
		}
	})
	if allocs != 0 {
		t.Fatalf("a heartbeat like the last allocated %v times, want 0", allocs)
	}
	if req.Held == nil || len(req.Held) != 0 || req.Worker != "w-0042" || len(req.Engines) != 2 {
		t.Fatalf("decoded %+v", req)
	}
}
