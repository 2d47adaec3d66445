package server_test

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/stream"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/scheduler/server"
)

// answerWait bounds the wait for one answer: a frame whose wake-up was
// lost is never answered, and the test says so instead of hanging.
const answerWait = 10 * time.Second

// TestStream_NoFrameIsLeftWaitingForAWakeUp: a stream's reader parks
// without the read that would find nothing once a read drained its socket
// (streamread.go); every frame must still be served at once, under TLS as
// in the grid and on plain TCP: 1,500 heartbeats sent one at a time, each
// in random pieces and each answered before the next (the next lands while
// the reader goes back to wait), then 300 sent in one burst past the
// reader's buffer (a read that fills it must not count as draining), then a
// frame of 200 KB (the buffer grows) followed by a heartbeat. A lost
// wake-up leaves an answer unsent and fails the test at answerWait; on
// Linux the reader must also have skipped reads (the path was taken).
func TestStream_NoFrameIsLeftWaitingForAWakeUp(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.Options{})
	leader := c.Leader()
	plain := httptest.NewServer(leader.Server.Handler())
	t.Cleanup(plain.Close)
	opens := map[string]func() *rawStream{
		"tls": func() *rawStream { return mustOpenRaw(t, c, leader, testcluster.Token, nil, "") },
		"plain": func() *rawStream {
			conn, err := net.Dial("tcp", strings.TrimPrefix(plain.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			return upgradePlain(t, conn)
		},
	}
	for _, name := range []string{"tls", "plain"} {
		t.Run(name, func(t *testing.T) {
			rs := opens[name]()
			skipped := server.StreamReadsSkipped(leader.Server)
			rng := rand.New(rand.NewPCG(1, 2))
			id := uint32(0)
			for range 1500 {
				id++
				sendInPieces(t, rs, rng, heartbeatFrame(t, id))
				expectAnswer(t, rs, id)
			}
			var burst []byte
			for range 300 {
				id++
				burst = append(burst, heartbeatFrame(t, id)...)
			}
			rs.sendBytes(t, burst)
			for i := id - 299; i <= id; i++ {
				expectAnswer(t, rs, i)
			}
			id++
			lease, err := json.Marshal(api.LeaseRequest{Worker: "w-read", Max: 1}) // no wait: answered at once
			if err != nil {
				t.Fatal(err)
			}
			big := "{" + strings.Repeat(" ", 200<<10) + string(lease[1:])
			rs.sendBytes(t, append(stream.Append(nil, stream.Frame{Kind: stream.KindLease, ID: id, Body: []byte(big)}), heartbeatFrame(t, id+1)...))
			for range 2 { // the lease may be answered after the heartbeat
				rs.setDeadline(t)
				if f := rs.recv(t); f.Kind != stream.KindAnswer || (f.ID != id && f.ID != id+1) {
					t.Fatalf("after the large frame: %s %d %q", f.Kind, f.ID, f.Body)
				}
			}
			if runtime.GOOS == "linux" && server.StreamReadsSkipped(leader.Server) == skipped {
				t.Fatal("the stream's reader never skipped a read: it did not read from the netpoller's callback")
			}
		})
	}
}

// upgradePlain asks for a worker stream on a plain connection.
func upgradePlain(t *testing.T, conn net.Conn) *rawStream {
	t.Helper()
	rs, code, body := upgradeOn(t, conn, testcluster.Token, "")
	if rs == nil {
		t.Fatalf("plain upgrade: %d %s", code, body)
	}
	return rs
}

func heartbeatFrame(t *testing.T, id uint32) []byte {
	t.Helper()
	body, err := json.Marshal(api.HeartbeatRequest{Worker: "w-read", Cores: 2, Engines: []string{"wazero"}, Held: []api.TaskRef{}})
	if err != nil {
		t.Fatal(err)
	}
	return stream.Append(nil, stream.Frame{Kind: stream.KindHeartbeat, ID: id, Body: body})
}

// sendInPieces writes b in one to four writes of random lengths (each its
// own segment: Go sets TCP_NODELAY).
func sendInPieces(t *testing.T, rs *rawStream, rng *rand.Rand, b []byte) {
	t.Helper()
	for pieces := rng.IntN(4); pieces > 0 && len(b) > 1; pieces-- {
		n := 1 + rng.IntN(len(b)-1)
		rs.sendBytes(t, b[:n])
		b = b[n:]
	}
	rs.sendBytes(t, b)
}

func expectAnswer(t *testing.T, rs *rawStream, id uint32) {
	t.Helper()
	rs.setDeadline(t)
	f, err := stream.Read(rs.in, stream.MaxAnswer)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("heartbeat %d not answered within %s: its wake-up was lost", id, answerWait)
	}
	if err != nil {
		t.Fatalf("reading the answer to heartbeat %d: %v", id, err)
	}
	if f.Kind != stream.KindAnswer || f.ID != id {
		t.Fatalf("heartbeat %d: got %s %d %q", id, f.Kind, f.ID, f.Body)
	}
}

func (rs *rawStream) setDeadline(t *testing.T) {
	t.Helper()
	if err := rs.conn.SetReadDeadline(time.Now().Add(answerWait)); err != nil {
		t.Fatal(err)
	}
}
