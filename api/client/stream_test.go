package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/stream"
)

// frozenStreamServer offers quiet heartbeats, answers a stream's first
// heartbeat with ttl and then nothing more (a leader that froze), and
// counts the heartbeats sent to it as requests.
func frozenStreamServer(t *testing.T, ttl time.Duration, requests *atomic.Int64) *httptest.Server {
	t.Helper()
	answer, _ := json.Marshal(api.HeartbeatResponse{TTL: ttl})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/heartbeat" {
			requests.Add(1)
			writeJSON(w, http.StatusOK, api.HeartbeatResponse{TTL: ttl})
			return
		}
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + stream.Protocol + "\r\n" +
			stream.FeaturesHeader + ": " + stream.FeatureQuietHeartbeats + "\r\n\r\n")
		_ = buf.Flush()
		for n := 0; ; n++ {
			f, err := stream.Read(buf.Reader, stream.MaxRequest)
			if err != nil {
				return
			}
			if n == 0 {
				_ = stream.Write(buf.Writer, stream.Frame{Kind: stream.KindAnswer, ID: f.ID, Body: answer})
				_ = buf.Flush()
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestClientStream_QuietHeartbeatsStillNoticeAFrozenLeader: heartbeats go
// quiet only while the server was heard from within half a TTL, so a
// leader that stops answering is noticed by the first heartbeat past that,
// which waits HedgeAfter and is then sent as a request: well before the
// worker's TTL runs out.
func TestClientStream_QuietHeartbeatsStillNoticeAFrozenLeader(t *testing.T) {
	const ttl = time.Second
	var requests atomic.Int64
	srv := frozenStreamServer(t, ttl, &requests)
	c := New(srv.URL, "tok")
	c.WorkerStream = true
	c.HedgeAfter = 100 * time.Millisecond
	ctx := context.Background()
	if resp, err := c.Heartbeat(ctx, &api.HeartbeatRequest{Worker: "w1"}); err != nil || resp.TTL != ttl {
		t.Fatalf("first heartbeat: %+v, %v", resp, err)
	}
	answered := time.Now()
	for requests.Load() == 0 {
		if time.Since(answered) > ttl {
			t.Fatalf("no heartbeat reached a server within the TTL (%s) of the last answer", ttl)
		}
		resp, err := c.Heartbeat(ctx, &api.HeartbeatRequest{Worker: "w1"})
		if err != nil || resp.TTL != ttl {
			t.Fatalf("heartbeat: %+v, %v", resp, err)
		}
	}
	if since := time.Since(answered); since < quietWithin(ttl) {
		t.Fatalf("a heartbeat was sent as a request %s after the last answer, before quietWithin %s", since, quietWithin(ttl))
	}
}

// TestClientStream_GoesQuietOnlyWhenOfferedAndHeardFromRecently: a
// heartbeat goes quiet only on a stream whose server offered it, once the
// TTL is known, while the server was heard from within half of it.
func TestClientStream_GoesQuietOnlyWhenOfferedAndHeardFromRecently(t *testing.T) {
	fresh := func(quiet bool, ttl, heardAgo time.Duration) *clientStream {
		st := &clientStream{done: make(chan struct{}), quiet: quiet, ttl: ttl}
		st.heard.Store(time.Now().Add(-heardAgo).UnixNano())
		return st
	}
	cases := []struct {
		name string
		st   *clientStream
		want bool
	}{
		{"offered, TTL known, heard just now", fresh(true, 10*time.Second, 0), true},
		{"heard from over half a TTL ago", fresh(true, 10*time.Second, 6*time.Second), false},
		{"not offered", fresh(false, 10*time.Second, 0), false},
		{"TTL not yet known", fresh(true, 0, 0), false},
		{"no stream", nil, false},
	}
	for _, tc := range cases {
		if got := tc.st.mayGoQuiet(); got != tc.want {
			t.Errorf("%s: mayGoQuiet %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestClientStream_OnlyAHeartbeatSayingTheSameGoesQuiet: a worker's first
// heartbeat on a stream, and one that changes what the leader may commit,
// wait for their answer; one saying what the last answered one said, with
// other running leases, may go quiet.
func TestClientStream_OnlyAHeartbeatSayingTheSameGoesQuiet(t *testing.T) {
	st := &clientStream{said: map[string]string{}, late: map[string]stream.Frame{}}
	base := api.HeartbeatRequest{Worker: "w1", Address: "10.0.0.1:7000", Cores: 4, Engines: []string{"wazero"}}
	if st.saysTheSame(&base) {
		t.Fatal("a worker's first heartbeat on the stream may go quiet")
	}
	st.answered(&base)
	same := base
	same.Running = []api.TaskRef{{Job: "j", Index: 1, Attempt: 1}}
	if !st.saysTheSame(&same) {
		t.Fatal("a heartbeat saying the same (other running leases) may not go quiet")
	}
	for name, change := range map[string]func(*api.HeartbeatRequest){
		"address":  func(r *api.HeartbeatRequest) { r.Address = "10.0.0.2:7000" },
		"cores":    func(r *api.HeartbeatRequest) { r.Cores = 8 },
		"draining": func(r *api.HeartbeatRequest) { r.Draining = true },
		"engines":  func(r *api.HeartbeatRequest) { r.Engines = []string{"wazero", "wasmtime"} },
		"storage":  func(r *api.HeartbeatRequest) { r.Storage = true },
		"paused":   func(r *api.HeartbeatRequest) { r.Paused = true },
		"worker":   func(r *api.HeartbeatRequest) { r.Worker = "w2" },
	} {
		req := base
		change(&req)
		if st.saysTheSame(&req) {
			t.Errorf("a heartbeat changing its %s may go quiet", name)
		}
	}
}
