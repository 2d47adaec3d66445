package client

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
)

// leaseAnswers are answers as the server writes them: its hand-written
// encoder gives encoding/json's bytes and a newline (the server's
// FuzzLeaseResponseFastPath holds it to that).
func leaseAnswers(t testing.TB) [][]byte {
	t.Helper()
	expiry := time.Date(2026, 12, 6, 17, 4, 5, 123456789, time.UTC)
	task := func(i int) api.Assignment {
		return api.Assignment{Job: "j-0123456789abcdef", Index: i, Attempt: 1, ModuleHash: "sha256-" + strings.Repeat("ab", 32),
			Name: "scale", Args: []string{"{index}", "7"}, Seed: 0xfedc_ba98_7654_3210 + uint64(i), Timeout: 10 * time.Minute,
			Memory: 1 << 20, MaxOutput: 1 << 10, Engine: "auto", GridEngine: "wasmtime", Expiry: expiry}
	}
	full := task(3)
	full.Env, full.Stdin, full.InputHash, full.K, full.M = map[string]string{"A": "1", "B": ""}, []byte("in\x00put"), "sha256-input", 4, 2
	full.Expiry = time.Date(2026, 12, 6, 17, 4, 5, 0, time.FixedZone("", 3600))
	var tasks []api.Assignment
	for i := range 8 {
		tasks = append(tasks, task(500_000+i))
	}
	var out [][]byte
	for _, resp := range []api.LeaseResponse{
		{Tasks: tasks, Accepted: []bool{true, true, false, true}},
		{Tasks: []api.Assignment{full}},
		{Tasks: []api.Assignment{}},
		{},
		{Accepted: []bool{true}},
	} {
		body, err := json.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append(body, '\n'))
	}
	return out
}

// TestLeaseAnswer_ServersShapeTakesTheFastPath: every answer in the
// server's shape, uint64 seeds above 2^63, an environment, stdin and a
// zoned expiry included, is decoded by the hand-written path, into what
// encoding/json gives.
func TestLeaseAnswer_ServersShapeTakesTheFastPath(t *testing.T) {
	for _, body := range leaseAnswers(t) {
		var fast, slow api.LeaseResponse
		if !fastDecodeLeaseAnswer(body, &fast) {
			t.Fatalf("the fast path refused the server's shape: %s", body)
		}
		if err := json.Unmarshal(body, &slow); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fast path %+v\nencoding/json %+v\nof %s", fast, slow, body)
		}
	}
}

// FuzzLeaseAnswerFastPath: whatever the bytes, the hand-written path
// either refuses them or gives exactly what encoding/json gives (which
// then accepts them too), and decodeLeaseAnswer always agrees with
// json.Unmarshal on whether the bytes are an answer and on the answer.
func FuzzLeaseAnswerFastPath(f *testing.F) {
	for _, body := range leaseAnswers(f) {
		f.Add(body)
	}
	f.Add([]byte(`{"tasks":[{"job":"a\u0041","index":1}],"accepted":[true]}`))
	f.Add([]byte(`{"tasks":[{"job":"a","JOB":"b","seed":18446744073709551616}]}`))
	f.Add([]byte(`{"tasks":[{"env":{"a":"1","a":"2"},"memory":-1,"k":1.5}],"accepted":null} x`))
	f.Add([]byte(` { "tasks" : [ { "index" : 007 , "expiry" : "2026-12-06T17:04:05+01:00" } ] } `))
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast, slow api.LeaseResponse
		slowErr := json.Unmarshal(body, &slow)
		if fastDecodeLeaseAnswer(body, &fast) {
			if slowErr != nil {
				t.Fatalf("fast path took what encoding/json refuses (%v): %q", slowErr, body)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("fast path %+v\nencoding/json %+v\nof %q", fast, slow, body)
			}
		}
		var got api.LeaseResponse
		err := decodeLeaseAnswer(body, &got)
		if (err == nil) != (slowErr == nil) || err == nil && !reflect.DeepEqual(got, slow) {
			t.Fatalf("decodeLeaseAnswer %+v, %v; encoding/json %+v, %v; of %q", got, err, slow, slowErr, body)
		}
	})
}

// BenchmarkLeaseAnswer: decoding a lease of 8 tasks carrying 4 reports'
// verdicts, by the hand-written path and by encoding/json.
//
//	go test -run '^$' -bench LeaseAnswer ./api/client/
func BenchmarkLeaseAnswer(b *testing.B) {
	body := leaseAnswers(b)[0]
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			var out api.LeaseResponse
			if err := decodeLeaseAnswer(body, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			var out api.LeaseResponse
			if err := json.Unmarshal(body, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
