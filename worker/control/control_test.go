package control

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

type fakeHandler struct {
	mu     sync.Mutex
	paused bool
	prefs  map[string]string
}

func (f *fakeHandler) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := Status{Worker: "w1", State: "running", Prefs: map[string]string{}}
	if f.paused {
		st.State = "paused"
	}
	for k, v := range f.prefs {
		st.Prefs[k] = v
	}
	return st
}
func (f *fakeHandler) Pause()  { f.mu.Lock(); f.paused = true; f.mu.Unlock() }
func (f *fakeHandler) Resume() { f.mu.Lock(); f.paused = false; f.mu.Unlock() }
func (f *fakeHandler) Set(k, v string) error {
	if k != "max_cpu" {
		return errors.New(k + ": unknown preference")
	}
	f.mu.Lock()
	f.prefs[k] = v
	f.mu.Unlock()
	return nil
}

// shortDir is a temp dir with a path short enough for a unix socket.
func shortDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "pgc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestControl_SocketIsOwnerOnlyAndAnswersEachOp(t *testing.T) {
	path := filepath.Join(shortDir(t), SocketName)
	h := &fakeHandler{prefs: map[string]string{}}
	s, err := Listen(path, h, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v %v, want a socket with mode 0600", fi.Mode(), err)
	}
	ctx := context.Background()
	if st, err := Call(ctx, path, Request{Op: "pause"}); err != nil || st.State != "paused" {
		t.Fatalf("pause: %+v %v", st, err)
	}
	if st, err := Call(ctx, path, Request{Op: "resume"}); err != nil || st.State != "running" {
		t.Fatalf("resume: %+v %v", st, err)
	}
	if st, err := Call(ctx, path, Request{Op: "set", Key: "max_cpu", Value: "40"}); err != nil || st.Prefs["max_cpu"] != "40" {
		t.Fatalf("set: %+v %v", st, err)
	}
	if _, err := Call(ctx, path, Request{Op: "set", Key: "nice", Value: "1"}); err == nil || !strings.Contains(err.Error(), "nice") {
		t.Fatalf("a refused set: %v", err)
	}
	if _, err := Call(ctx, path, Request{Op: "reboot"}); err == nil || !strings.Contains(err.Error(), "unknown op") {
		t.Fatalf("unknown op: %v", err)
	}
	if _, err := Listen(path, h, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a second worker took the socket of a running one")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
	if _, err := Call(ctx, path, Request{Op: "status"}); !errors.Is(err, ErrNoWorker) {
		t.Fatalf("no worker: %v", err)
	}
}

func TestControl_StaleSocketIsReplacedAndLongPathsRefused(t *testing.T) {
	dir := shortDir(t)
	path := filepath.Join(dir, SocketName)
	os.WriteFile(path, nil, 0o600) // left by a worker that died
	s, err := Listen(path, &fakeHandler{prefs: map[string]string{}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	long := filepath.Join(dir, strings.Repeat("d", 120), SocketName)
	if _, err := Listen(long, &fakeHandler{}, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "shorter --data-dir") {
		t.Fatalf("a too long path: %v", err)
	}
}
