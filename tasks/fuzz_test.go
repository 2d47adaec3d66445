package tasks

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseJobFile feeds the job-file parser arbitrary bytes (beside a
// module and two input files it may name). It must never panic; every
// error must be a job-file error; and whatever it accepts the server must
// accept too: the spec it makes passes JobSpec.Validate, so a job file the
// CLI lets through is never refused by the bounds alone.
func FuzzParseJobFile(f *testing.F) {
	for _, seed := range []string{
		"name = \"n\"\nmodule = \"m.wasm\"\ntasks = 3\n",
		"name = \"n\"\nmodule = \"m.wasm\"\ninputs = \"data/*.txt\"\nargs = [\"{input}\", \"{index}\", \"{count}\"]\n",
		"name = \"n\"\nmodule = \"m.wasm\"\ntasks = 10000000\ntimeout = \"720h\"\nmemory = \"4GiB\"\nmax_output = \"1GiB\"\nretries = 100\npriority = -100\nengine = \"wazero\"\nerasure = { k = 4, m = 2 }\nenv = { A = \"b\" }\n",
		"name = \"n\"\nmodule = \"m.wasm\"\ntasks = 1\ntimeout = \"2562047h47m16.854775807s\"\n",
		"name = \"n\"\nmodule = \"m.wasm\"\ntasks = 1\nmemory = 65536\nmax_output = 1\n",
		"name = \"n\"\nmodule = \"m.wasm\"\ntasks = 1\npriority = 101\nretries = -1\n",
		"taks = 5\n[job]\nx = 1\n",
		"name = \"n\n",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	for name, data := range map[string]string{"m.wasm": "\x00asm\x01\x00\x00\x00", "data/a.txt": "a", "data/b.txt": "b"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	path := filepath.Join(dir, "job.toml")
	f.Fuzz(func(t *testing.T, data []byte) {
		jf, err := Parse(data, path)
		if err != nil {
			if !errors.Is(err, ErrJobFile) {
				t.Fatalf("error %v is not a job-file error", err)
			}
			return
		}
		inputs := make([]Input, len(jf.InputPaths))
		for i, p := range jf.InputPaths {
			inputs[i] = Input{Name: filepath.Base(p), Hash: strings.Repeat("c", 64)}
		}
		if err := jf.Spec(strings.Repeat("a", 64), inputs).Validate(); err != nil {
			t.Fatalf("the parser accepted %q but the server would refuse it: %v", data, err)
		}
	})
}
