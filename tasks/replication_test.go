package tasks

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse_ReplicationKeys(t *testing.T) {
	const head = "name = \"n\"\nmodule = \"m.wasm\"\ntasks = 2\n"
	cases := []struct {
		body    string
		r, q, m int
		adapt   bool
	}{
		{"", 1, 1, 3, false},
		{"replicas = 3\n", 3, 2, 5, false},
		{"replicas = 3\nquorum = 3\nmax_replicas = 7\n", 3, 3, 7, false},
		{"replicas = 2\nquorum = 1\n", 2, 1, 4, false},
		{"replicas = \"adaptive\"\n", 2, 2, 4, true},
		{"replicas = \"adaptive\"\nmax_replicas = 6\n", 2, 2, 6, true},
	}
	for _, c := range cases {
		f, err := Parse([]byte(head+c.body), writeJob(t, t.TempDir(), head+c.body))
		if err != nil {
			t.Fatalf("%q: %v", c.body, err)
		}
		spec := f.Spec(strings.Repeat("a", 64), nil)
		if err := spec.Validate(); err != nil {
			t.Fatalf("%q: spec: %v", c.body, err)
		}
		r, q, m := spec.Replication()
		if r != c.r || q != c.q || m != c.m || spec.Adaptive != c.adapt {
			t.Errorf("%q: replication %d,%d,%d adaptive %v; want %d,%d,%d %v", c.body, r, q, m, spec.Adaptive, c.r, c.q, c.m, c.adapt)
		}
		if spec.Replicated() != (c.r > 1 || c.adapt) {
			t.Errorf("%q: Replicated() = %v", c.body, spec.Replicated())
		}
	}
}

func TestParse_ReplicationErrorsNameTheKey(t *testing.T) {
	const head = "name = \"n\"\nmodule = \"m.wasm\"\ntasks = 2\n" // lines 1-3
	cases := []struct{ body, want, key string }{
		{"replicas = 0\n", `:4: replicas = 0, want 1..16 or "adaptive"`, "replicas"},
		{"replicas = 17\n", `:4: replicas = 17, want 1..16 or "adaptive"`, "replicas"},
		{"replicas = \"many\"\n", `:4: replicas = "many", want an integer 1..16 or "adaptive"`, "replicas"},
		{"replicas = 3\nquorum = 4\n", `:5: quorum = 4, want 1..3 (replicas)`, "quorum"},
		{"quorum = 2\n", `:4: quorum = 2, want 1..1 (replicas)`, "quorum"},
		{"replicas = 3\nmax_replicas = 2\n", `:5: max_replicas = 2, want 3..32 (replicas..32)`, "max_replicas"},
		{"replicas = 3\nmax_replicas = 33\n", `:5: max_replicas = 33, want 3..32 (replicas..32)`, "max_replicas"},
		{"replicas = \"adaptive\"\nquorum = 2\n", `:5: quorum with replicas = "adaptive"`, "quorum"},
	}
	for _, c := range cases {
		path := writeJob(t, t.TempDir(), head+c.body)
		_, err := Parse([]byte(head+c.body), path)
		var fe *Error
		if !errors.As(err, &fe) || fe.Key != c.key || !strings.Contains(err.Error(), filepath.Base(path)+c.want) {
			t.Errorf("%q: got %v (key %v), want %q naming %s", c.body, err, fe, c.want, c.key)
		}
	}
}

func TestJobSpec_ValidateRefusesReplicationOutOfRange(t *testing.T) {
	base := JobSpec{Name: "n", ModuleHash: strings.Repeat("a", 64), Tasks: 1, Timeout: DefaultTimeout, Memory: DefaultMemory, MaxOutput: DefaultMaxOutput}
	bad := []JobSpec{
		{Replicas: -1}, {Replicas: 17}, {Replicas: 3, Quorum: 4}, {Quorum: 2}, {Replicas: 2, MaxReplicas: 1},
		{Replicas: 2, MaxReplicas: 33}, {Adaptive: true, Replicas: 2}, {Adaptive: true, Quorum: 2}, {Adaptive: true, MaxReplicas: 1},
	}
	for _, b := range bad {
		s := base
		s.Replicas, s.Quorum, s.MaxReplicas, s.Adaptive = b.Replicas, b.Quorum, b.MaxReplicas, b.Adaptive
		if err := s.Validate(); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%+v: Validate = %v, want ErrInvalidSpec", b, err)
		}
	}
}

func TestResultHash_JudgesExitCodeAndStdoutOnly(t *testing.T) {
	a := Result{ExitCode: 0, Stdout: []byte("42\n"), Stderr: []byte("log"), Engine: "wazero"}
	b := Result{ExitCode: 0, Stdout: []byte("42\n"), Stderr: []byte("other log"), Engine: "wasmtime"}
	if ResultHash(a.ExitCode, a.StdoutSum()) != ResultHash(b.ExitCode, b.StdoutSum()) {
		t.Error("same exit code and stdout hash differently")
	}
	c := Result{ExitCode: 0, Stdout: []byte("43\n")}
	d := Result{ExitCode: 1, Stdout: []byte("42\n")}
	for _, r := range []Result{c, d} {
		if ResultHash(r.ExitCode, r.StdoutSum()) == ResultHash(a.ExitCode, a.StdoutSum()) {
			t.Errorf("%+v hashes like %+v", r, a)
		}
	}
	blob := Result{StdoutBlob: a.StdoutSum()} // the same bytes, erasure-coded
	if ResultHash(blob.ExitCode, blob.StdoutSum()) != ResultHash(a.ExitCode, a.StdoutSum()) {
		t.Error("a stdout blob votes unlike the same bytes inline")
	}
}
