package tasks

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func validSpec() JobSpec {
	return JobSpec{Name: "j", ModuleHash: strings.Repeat("a", 64), Tasks: 1, Timeout: time.Minute,
		Memory: DefaultMemory, MaxOutput: DefaultMaxOutput, Retries: DefaultRetries}
}

// TestValidate_BoundsNameTheFieldAndTheRange checks that every numeric
// field a submitter sets through the API is bounded, and that the refusal
// names the field and its range: the server validates what any client sent.
func TestValidate_BoundsNameTheFieldAndTheRange(t *testing.T) {
	cases := []struct {
		name string
		set  func(*JobSpec)
		want string
	}{
		{"timeout that overflows a lease expiry", func(s *JobSpec) { s.Timeout = math.MaxInt64 },
			"timeout = 2562047h47m16.854775807s, want more than 0 and at most 720h0m0s"},
		{"negative timeout", func(s *JobSpec) { s.Timeout = -1 }, "timeout = -1ns, want more than 0"},
		{"retries above 100", func(s *JobSpec) { s.Retries = 101 }, "retries = 101, want 0..100"},
		{"retries near max int64", func(s *JobSpec) { s.Retries = math.MaxInt64 }, "retries = 9223372036854775807, want 0..100"},
		{"negative retries", func(s *JobSpec) { s.Retries = -1 }, "retries = -1, want 0..100"},
		{"priority above 100", func(s *JobSpec) { s.Priority = 101 }, "priority = 101, want -100..100"},
		{"priority min int64", func(s *JobSpec) { s.Priority = math.MinInt64 }, "priority = -9223372036854775808, want -100..100"},
		{"tasks above 10M", func(s *JobSpec) { s.Tasks = MaxTasks + 1 }, "tasks = 10000001, want 1..10000000"},
		{"zero tasks", func(s *JobSpec) { s.Tasks = 0 }, "tasks = 0, want 1..10000000"},
		{"memory below a page", func(s *JobSpec) { s.Memory = 1 }, "memory = 1 bytes, want 65536..4294967296"},
		{"memory above 4GiB", func(s *JobSpec) { s.Memory = MaxMemory + 1 }, "memory = 4294967297 bytes, want 65536..4294967296"},
		{"max_output above 1GiB", func(s *JobSpec) { s.MaxOutput = MaxOutput + 1 }, "max_output = 1073741825 bytes, want 1..1073741824"},
		{"zero max_output", func(s *JobSpec) { s.MaxOutput = 0 }, "max_output = 0 bytes, want 1..1073741824"},
		{"erasure too wide", func(s *JobSpec) { s.DataShards, s.ParityShards = 200, 100 }, "erasure k = 200, m = 100: want k >= 1, m >= 0, k+m <= 256"},
		{"negative input size", func(s *JobSpec) {
			s.Inputs = []Input{{Name: "x", Hash: strings.Repeat("b", 64), Size: -5}}
		}, "input 0 (x): size = -5, want 0 or more"},
		{"name too long", func(s *JobSpec) { s.Name = strings.Repeat("n", 201) }, "name is 201 bytes, want at most 200"},
		{"too many args", func(s *JobSpec) { s.Args = make([]string, MaxArgs+1) }, "1025 args, want at most 1024"},
		{"args and env too large", func(s *JobSpec) { s.Env = map[string]string{"K": strings.Repeat("v", MaxArgEnvBytes)} },
			"args and env hold 65537 bytes, want at most 65536"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := validSpec()
			tc.set(&s)
			err := s.Validate()
			if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want ErrInvalidSpec saying %q", err, tc.want)
			}
		})
	}
	s := validSpec()
	s.Timeout, s.Retries, s.Priority, s.Tasks = TimeoutLimit, MaxRetries, MinPriority, MaxTasks
	if err := s.Validate(); err != nil {
		t.Fatalf("a spec at every bound is refused: %v", err)
	}
}
