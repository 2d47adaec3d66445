package tasks

import (
	"fmt"
	"strings"
	"testing"
)

func seedSpec() *JobSpec {
	return &JobSpec{
		Name: "mc", ModuleHash: strings.Repeat("ab", 32), Args: []string{"run", "{index}"},
		Env: map[string]string{"A": "1", "B": "2"}, Tasks: 3,
		Inputs: []Input{{Name: "a", Hash: strings.Repeat("01", 32)}, {Name: "b", Hash: strings.Repeat("02", 32)}, {Name: "c", Hash: strings.Repeat("03", 32)}},
	}
}

// The seed is a function of what the task is, not of the job it came in:
// the same content in another job (another id, limits, priority or engine)
// gets the same seed; any change of content (argv[0], the job's name,
// included) gets another.
func TestSeed_FollowsTheTaskContentOnly(t *testing.T) {
	base := Seed(seedSpec(), 1)
	same := seedSpec()
	same.Timeout, same.Memory, same.MaxOutput, same.Retries, same.Engine, same.Priority = 99, 1<<20, 5, 3, EngineWasmer, 5
	same.NoCache = true // whether to take cached results is not what the task is
	if got := Seed(same, 1); got != base {
		t.Errorf("limits, priority and engine changed the seed: %x vs %x", got, base)
	}
	changes := map[string]func(*JobSpec) int{
		"name":      func(s *JobSpec) int { s.Name = "mc2"; return 1 },
		"module":    func(s *JobSpec) int { s.ModuleHash = strings.Repeat("cd", 32); return 1 },
		"args":      func(s *JobSpec) int { s.Args = []string{"run", "{index}", "x"}; return 1 },
		"env value": func(s *JobSpec) int { s.Env["A"] = "9"; return 1 },
		"env key":   func(s *JobSpec) int { s.Env = map[string]string{"A": "1", "C": "2"}; return 1 },
		"input":     func(s *JobSpec) int { s.Inputs[1].Hash = strings.Repeat("09", 32); return 1 },
		"index":     func(s *JobSpec) int { return 2 },
		"seed":      func(s *JobSpec) int { s.Seed = 1; return 1 },
		// Fields are length-prefixed: moving a byte between two args is
		// another content.
		"arg split": func(s *JobSpec) int { s.Args = []string{"ru", "n{index}"}; return 1 },
	}
	for name, change := range changes {
		s := seedSpec()
		index := change(s)
		if got := Seed(s, index); got == base {
			t.Errorf("%s: changing it kept the seed %x", name, got)
		}
	}
}

// The env is a set: the order a map gives its keys in is not content.
func TestSeed_EnvOrderDoesNotMatter(t *testing.T) {
	a, b := seedSpec(), seedSpec()
	b.Env = map[string]string{}
	b.Env["B"], b.Env["A"] = "2", "1"
	for range 20 { // map iteration order varies; the seed must not
		if Seed(a, 0) != Seed(b, 0) {
			t.Fatal("the same env in another map order gave another seed")
		}
	}
}

func TestJobFile_Seed(t *testing.T) {
	path := writeJob(t, t.TempDir(), "name = \"a\"\nmodule = \"m.wasm\"\ntasks = 1\nseed = 42\n")
	f, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Seed != 42 || f.Spec(strings.Repeat("ab", 32), nil).Seed != 42 {
		t.Fatalf("seed = 42 read as %d", f.Seed)
	}
	_, err = Parse([]byte("name = \"a\"\nmodule = \"m.wasm\"\ntasks = 1\nseed = -1\n"), path)
	if err == nil || !strings.Contains(err.Error(), "job.toml:4: seed = -1, want a non-negative integer") {
		t.Fatalf("seed = -1: %v", err)
	}
}

// TestJobFile_Cache: the cache is on unless the job file says cache =
// false; a value that is not a boolean is refused naming the key.
func TestJobFile_Cache(t *testing.T) {
	dir := t.TempDir()
	for text, want := range map[string]bool{"": false, "cache = true\n": false, "cache = false\n": true} {
		f, err := ParseFile(writeJob(t, dir, "name = \"a\"\nmodule = \"m.wasm\"\ntasks = 1\n"+text))
		if err != nil {
			t.Fatal(err)
		}
		if f.NoCache != want || f.Spec(strings.Repeat("ab", 32), nil).NoCache != want {
			t.Fatalf("%q: no_cache %v, want %v", text, f.NoCache, want)
		}
	}
	_, err := Parse([]byte("name = \"a\"\nmodule = \"m.wasm\"\ntasks = 1\ncache = \"no\"\n"), "job.toml")
	if err == nil || !strings.Contains(err.Error(), "cache: want true or false") {
		t.Fatalf("cache = \"no\": %v", err)
	}
}

// TestContentHash_IsPinned: the content hash is part of the determinism
// contract (it seeds every task and keys the result cache); a change of
// its encoding must be a new version, not an accident.
func TestContentHash_IsPinned(t *testing.T) {
	s := seedSpec()
	s.Env = map[string]string{"B": "2", "A": "1"}
	s.Seed = 7
	for _, c := range []struct {
		spec  *JobSpec
		index int
		want  string
	}{
		{s, 1, "c439c9701f60ae5bea70e46b6cfdffacfec23b98ed9410a0916e4544ec788557"},
		{seedSpec(), 0, "b2ab287afeeee50cf800ccc7f5aa463eafa5aa420212221b459926209b9da642"},
	} {
		if got := fmt.Sprintf("%x", ContentHash(c.spec, c.index)); got != c.want {
			t.Errorf("ContentHash(task %d) = %s, want %s", c.index, got, c.want)
		}
	}
}
