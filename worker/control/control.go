// Package control is a running worker's local control socket: `peergrid
// worker status|pause|resume|prefs` talk to the worker through it. It is a
// unix socket in the worker's data dir, mode 0600 in a 0700 directory, so
// only the user the worker runs as can reach it. Each connection carries
// one JSON request and one JSON response.
//
// On Windows the same AF_UNIX socket is used (Windows 10 1803 and later);
// there chmod does nothing and the socket is guarded by the data dir's ACL
// alone. A named pipe with an owner-only security descriptor would be the
// native choice; it is not built (it cannot be tested here).
//
// It knows nothing of the grid: the worker gives it a Handler.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// SocketName is the control socket's file name in a worker's data dir.
const SocketName = "control.sock"

// maxSocketPath is the longest unix socket path every OS takes (sun_path
// is 104 bytes on macOS, 108 on Linux, both with the NUL).
const maxSocketPath = 103

// Request is one command.
type Request struct {
	Op    string `json:"op"` // "status", "pause", "resume", "set"
	Key   string `json:"key,omitempty"`
	Value string `json:"value,omitempty"`
}

// Response answers a Request: the status after it, or why it failed.
type Response struct {
	Error  string  `json:"error,omitempty"`
	Status *Status `json:"status,omitempty"`
}

// Status is what a worker is doing now and why, its preferences, and
// today's totals: what `peergrid worker status` prints.
type Status struct {
	Worker string `json:"worker"`
	// State is "running", "waiting" (for the machine to be idle),
	// "paused", or "draining".
	State  string `json:"state"`
	Reason string `json:"reason"`
	// Since is when the worker entered State.
	Since time.Time `json:"since"`
	// Running and Held count tasks running now and leases held (running,
	// stopped or queued).
	Running int `json:"running"`
	Held    int `json:"held"`
	// CPULimit is the share of the machine the executors may use (1: all).
	CPULimit float64 `json:"cpu_limit"`
	// HandedBack says the pause outlasted pause_keep and the tasks went
	// back to the grid.
	HandedBack bool              `json:"handed_back,omitempty"`
	Prefs      map[string]string `json:"prefs"`
	// Sources says where each observation comes from, or why it cannot.
	Sources map[string]string `json:"sources,omitempty"`
	Today   Totals            `json:"today"`
}

// Totals are a day's work (local time).
type Totals struct {
	Date       string  `json:"date"` // 2006-01-02
	TasksDone  int     `json:"tasks_done"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// StoredBytes is what the worker keeps for the grid: the shards in its
	// store, as last measured.
	StoredBytes int64 `json:"stored_bytes"`
}

// Handler is the worker's side of the socket.
type Handler interface {
	Status() Status
	Pause()
	Resume()
	// Set changes one preference; it errs naming the key and the value.
	Set(key, value string) error
}

// Server serves a Handler on a control socket.
type Server struct {
	ln   net.Listener
	path string
	h    Handler
	log  *slog.Logger
	wg   sync.WaitGroup
}

// Listen makes the control socket at path (owner-only) and serves h on it
// until Close. A socket file left by a worker that died is replaced; one a
// running worker answers on is not.
func Listen(path string, h Handler, log *slog.Logger) (*Server, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("control socket %s: the path is longer than the %d bytes a unix socket may have: use a shorter --data-dir", path, maxSocketPath)
	}
	if _, err := Call(context.Background(), path, Request{Op: "status"}); err == nil {
		return nil, fmt.Errorf("control socket %s: another worker is running on this data dir", path)
	}
	_ = os.Remove(path)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	s := &Server{ln: ln, path: path, h: h, log: log}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Close stops serving, waits for requests in progress, and removes the
// socket file.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	_ = os.Remove(s.path)
	return err
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.handle(c) }()
	}
}

const maxRequest = 64 << 10

func (s *Server) handle(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var req Request
	if err := json.NewDecoder(io.LimitReader(c, maxRequest)).Decode(&req); err != nil {
		_ = json.NewEncoder(c).Encode(Response{Error: "bad request: " + err.Error()})
		return
	}
	resp := s.answer(req)
	if err := json.NewEncoder(c).Encode(resp); err != nil {
		s.log.Debug("control socket: answer", "err", err)
	}
}

func (s *Server) answer(req Request) Response {
	switch req.Op {
	case "status":
	case "pause":
		s.h.Pause()
	case "resume":
		s.h.Resume()
	case "set":
		if err := s.h.Set(req.Key, req.Value); err != nil {
			return Response{Error: err.Error()}
		}
	default:
		return Response{Error: fmt.Sprintf("unknown op %q (status, pause, resume, set)", req.Op)}
	}
	st := s.h.Status()
	return Response{Status: &st}
}

// ErrNoWorker is returned when no worker answers on the socket.
var ErrNoWorker = errors.New("no worker is running on this data dir")

// Call sends one request to the worker at path and returns its status.
func Call(ctx context.Context, path string, req Request) (*Status, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("%w (%s: %v)", ErrNoWorker, path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, err
	}
	var resp Response
	if err := json.NewDecoder(io.LimitReader(c, 1<<20)).Decode(&resp); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if resp.Error != "" {
		return nil, errors.New(resp.Error)
	}
	if resp.Status == nil {
		return nil, fmt.Errorf("control socket %s: no status in the answer", path)
	}
	return resp.Status, nil
}
