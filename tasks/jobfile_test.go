package tasks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// wasmHeader is enough of a module for Parse, which checks only the magic.
var wasmHeader = []byte("\x00asm\x01\x00\x00\x00")

// writeJob writes a job file and, unless the file names another, m.wasm next
// to it, and returns the job file's path.
func writeJob(t *testing.T, dir, body string) string {
	t.Helper()
	writeFile(t, filepath.Join(dir, "m.wasm"), wasmHeader)
	path := filepath.Join(dir, "job.toml")
	writeFile(t, path, []byte(body))
	return path
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParse_EveryField(t *testing.T) {
	dir := t.TempDir()
	path := writeJob(t, dir, `
name = "primes"
module = "m.wasm"          # relative to the job file
args = ["{index}", "{count}", "--fast"]
tasks = 100
env = { MODE = "fast", LEVEL = "3" }
timeout = "1m30s"
memory = "512MiB"
max_output = "1.5MiB"
retries = 5
priority = -7
engine = "wasmer"
erasure = { k = 3, m = 2 }
`)
	f, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := &JobFile{
		Path:       path,
		Name:       "primes",
		Module:     "m.wasm",
		ModulePath: filepath.Join(dir, "m.wasm"),
		Dir:        dir,
		moduleLine: 3,
		Args:       []string{"{index}", "{count}", "--fast"},
		Tasks:      100,
		Env:        map[string]string{"MODE": "fast", "LEVEL": "3"},
		Timeout:    90 * time.Second,
		Memory:     512 << 20,
		MaxOutput:  3 << 19,
		Retries:    5,
		Priority:   -7,
		Engine:     "wasmer",
		DataShards: 3, ParityShards: 2,
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("got  %+v\nwant %+v", f, want)
	}
}

func TestParse_AppliesDefaults(t *testing.T) {
	path := writeJob(t, t.TempDir(), "name = \"n\"\nmodule = \"m.wasm\"\ntasks = 1\n")
	f, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Timeout != DefaultTimeout || f.Memory != DefaultMemory || f.MaxOutput != DefaultMaxOutput ||
		f.Retries != DefaultRetries || f.Priority != 0 || f.Engine != EngineAuto {
		t.Errorf("defaults: got timeout %v memory %d max_output %d retries %d priority %d",
			f.Timeout, f.Memory, f.MaxOutput, f.Retries, f.Priority)
	}
	if f.Args == nil || len(f.Args) != 0 || f.Env == nil || len(f.Env) != 0 {
		t.Errorf("args %#v env %#v, want empty and non-nil", f.Args, f.Env)
	}
	if f.InputsGlob != "" || f.InputPaths != nil {
		t.Errorf("inputs %q %v, want none", f.InputsGlob, f.InputPaths)
	}
}

func TestParse_SizesMayBeIntegerBytes(t *testing.T) {
	path := writeJob(t, t.TempDir(), "name = \"n\"\nmodule = \"m.wasm\"\ntasks = 1\nmemory = 1048576\nmax_output = 4096\n")
	f, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Memory != 1<<20 || f.MaxOutput != 4096 {
		t.Errorf("memory %d max_output %d", f.Memory, f.MaxOutput)
	}
}

func TestParse_EnvAsTableSection(t *testing.T) {
	path := writeJob(t, t.TempDir(), "name = \"n\"\nmodule = \"m.wasm\"\ntasks = 1\n\n[env]\nA = \"1\"\n")
	f, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Env["A"] != "1" {
		t.Errorf("env %v", f.Env)
	}
}

func TestParse_InputsAreSortedFilesOneTaskEach(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"c.txt", "a.txt", "b.txt", "skip.dat"} {
		writeFile(t, filepath.Join(dir, "data", n), []byte("contents of "+n))
	}
	if err := os.Mkdir(filepath.Join(dir, "data", "dir.txt"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := writeJob(t, dir, "name = \"wc\"\nmodule = \"m.wasm\"\ninputs = \"data/*.txt\"\nargs = [\"{input}\"]\n")
	f, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, n := range []string{"a.txt", "b.txt", "c.txt"} {
		want = append(want, filepath.Join(dir, "data", n))
	}
	if !reflect.DeepEqual(f.InputPaths, want) || f.Tasks != 3 || f.InputsGlob != "data/*.txt" {
		t.Fatalf("inputs %v tasks %d glob %q, want %v", f.InputPaths, f.Tasks, f.InputsGlob, want)
	}

	inputs, err := f.HashInputs()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("contents of b.txt"))
	if got := inputs[1]; got.Name != "b.txt" || got.Hash != hex.EncodeToString(sum[:]) || got.Size != 17 {
		t.Errorf("input 1 = %+v", got)
	}
	spec := f.Spec(strings.Repeat("ab", 32), inputs)
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := spec.TaskArgs(2); !reflect.DeepEqual(got, []string{"c.txt"}) {
		t.Errorf("task 2 args %q, want [c.txt]", got)
	}
}

func TestParse_InputsUnderDirectoryWithGlobCharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "jobs [1]*")
	writeFile(t, filepath.Join(dir, "in", "x.txt"), []byte("x"))
	path := writeJob(t, dir, "name = \"n\"\nmodule = \"m.wasm\"\ninputs = \"in/*.txt\"\n")
	f, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(dir, "in", "x.txt")}; !reflect.DeepEqual(f.InputPaths, want) {
		t.Errorf("inputs %v, want %v", f.InputPaths, want)
	}
}

func TestParse_GlobAcrossDirectories(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "in", "b", "2.txt"), []byte("2"))
	writeFile(t, filepath.Join(dir, "in", "a", "1.txt"), []byte("1"))
	writeFile(t, filepath.Join(dir, "in", "c.txt"), []byte("not a dir"))
	path := writeJob(t, dir, "name = \"n\"\nmodule = \"m.wasm\"\ninputs = \"in/*/*.txt\"\n")
	f, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "in", "a", "1.txt"), filepath.Join(dir, "in", "b", "2.txt")}
	if !reflect.DeepEqual(f.InputPaths, want) {
		t.Errorf("inputs %v, want %v", f.InputPaths, want)
	}
}

func TestParse_ModuleResolvedAgainstJobFileDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "bin", "x.wasm"), wasmHeader)
	path := filepath.Join(dir, "jobs", "job.toml")
	writeFile(t, path, []byte("name = \"n\"\nmodule = \"../bin/x.wasm\"\ntasks = 1\n"))
	f, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "bin", "x.wasm"); f.ModulePath != want {
		t.Errorf("module %q, want %q", f.ModulePath, want)
	}

	abs := filepath.Join(dir, "bin", "x.wasm")
	f, err = Parse([]byte("name = \"n\"\nmodule = '"+abs+"'\ntasks = 1\n"), filepath.Join(dir, "elsewhere", "j.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if f.ModulePath != abs {
		t.Errorf("absolute module %q, want %q", f.ModulePath, abs)
	}
}

func TestParse_RelativePathsFromRelativeJobFile(t *testing.T) {
	dir := t.TempDir()
	writeJob(t, filepath.Join(dir, "sub"), "name = \"n\"\nmodule = \"m.wasm\"\ntasks = 1\n")
	t.Chdir(dir)
	f, err := ParseFile(filepath.Join("sub", "job.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != filepath.Join("sub", "job.toml") || f.ModulePath != filepath.Join("sub", "m.wasm") {
		t.Errorf("path %q module %q", f.Path, f.ModulePath)
	}
}

func TestExpandArgs_EveryPlaceholder(t *testing.T) {
	got := ExpandArgs([]string{"{index}", "{count}", "{input}", "--at={index}/{count}", "{index}{index}", "plain", "{other}"}, 7, 20, "a.txt")
	want := []string{"7", "20", "a.txt", "--at=7/20", "77", "plain", "{other}"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := ExpandArgs([]string{"in={input}"}, 0, 1, ""); got[0] != "in=" {
		t.Errorf("{input} without inputs: %q", got[0])
	}
}

func TestJobSpec_TaskArgsExpandsPerTask(t *testing.T) {
	path := writeJob(t, t.TempDir(), "name = \"n\"\nmodule = \"m.wasm\"\ntasks = 3\nargs = [\"{index}\", \"of\", \"{count}\"]\n")
	f, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	spec := f.Spec(strings.Repeat("0", 64), nil)
	for i := range 3 {
		want := []string{string(rune('0' + i)), "of", "3"}
		if got := spec.TaskArgs(i); !reflect.DeepEqual(got, want) {
			t.Errorf("task %d: %q, want %q", i, got, want)
		}
	}
}

func TestSpec_CopiesEveryFieldAndValidates(t *testing.T) {
	f := &JobFile{
		Name: "j", Args: []string{"{index}"}, Tasks: 2, Env: map[string]string{"A": "b"},
		Timeout: time.Second, Memory: 1 << 20, MaxOutput: 1 << 10, Retries: 1, Priority: 9, Engine: "wazero",
	}
	hash := strings.Repeat("f", 64)
	spec := f.Spec(hash, nil)
	want := &JobSpec{
		Name: "j", ModuleHash: hash, Args: []string{"{index}"}, Env: map[string]string{"A": "b"}, Tasks: 2,
		Timeout: time.Second, Memory: 1 << 20, MaxOutput: 1 << 10, Retries: 1, Priority: 9, Engine: "wazero",
	}
	if !reflect.DeepEqual(spec, want) {
		t.Fatalf("got  %+v\nwant %+v", spec, want)
	}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	spec.Args[0], spec.Env["A"] = "changed", "changed"
	if f.Args[0] != "{index}" || f.Env["A"] != "b" {
		t.Error("Spec shares its slices or maps with the JobFile")
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]uint64{
		"4096": 4096, "0": 0, "10B": 10, "512KiB": 512 << 10, "256MiB": 256 << 20, "1GiB": 1 << 30,
		"1.5MiB": 3 << 19, "2TiB": 2 << 40, "100MB": 100e6, "1kB": 1000, "3GB": 3e9, "1TB": 1e12,
		"256 MiB": 256 << 20, " 8mib ": 8 << 20, "0.5KiB": 512, "1.0001KiB": 1024,
	}
	for in, want := range good {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	bad := map[string]string{
		"12 parsecs":           `size "12 parsecs": unknown unit "parsecs"`,
		"5K":                   `unknown unit "K"`,
		"MiB":                  `size "MiB": not a size`,
		"":                     `size "": not a size`,
		"-1MiB":                `size "-1MiB": not a size`,
		"1.MiB":                `unknown unit ".MiB"`,
		"1e3":                  `unknown unit "e3"`,
		"99999999999999999TiB": `size "99999999999999999TiB": too large`,
	}
	for in, want := range bad {
		if _, err := ParseSize(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSize(%q) error %v, want it to say %s", in, err, want)
		}
	}
}

// TestParse_Errors checks that each bad file is refused with a message naming
// the file, the line (where the parser knows it) and the key.
func TestParse_Errors(t *testing.T) {
	const head = "name = \"n\"\nmodule = \"m.wasm\"\n" // lines 1-2
	cases := []struct {
		name string
		body string
		want string // the message after the file's path
		key  string
		line int
	}{
		{"unknown key", head + "taks = 3\n", `:3: unknown key "taks" (did you mean "tasks"?)`, "taks", 3},
		{"unknown key far from any", head + "tasks = 1\ncolour = \"red\"\n", `:4: unknown key "colour"`, "colour", 4},
		{"unknown table", head + "tasks = 1\n[job]\nx = 1\n", `:4: unknown table "job"`, "job", 4},
		{"tasks wrong type", head + "tasks = \"ten\"\n", `:3: tasks: want an integer, not a TOML string`, "tasks", 3},
		{"tasks float", head + "tasks = 1.5\n", `:3: tasks: want an integer, not a TOML float`, "tasks", 3},
		{"args wrong type", head + "tasks = 1\nargs = [1, 2]\n", `:4: args: want an array of strings, not a TOML integer`, "args", 4},
		{"args not array", head + "tasks = 1\nargs = \"{index}\"\n", `:4: args: want an array of strings`, "args", 4},
		{"env wrong type", head + "tasks = 1\nenv = { A = 1 }\n", `:4: env: want a table of strings, not a TOML integer`, "env", 4},
		{"timeout integer", head + "tasks = 1\ntimeout = 30\n", `:4: timeout: want a duration string such as "30s", not a TOML integer`, "timeout", 4},
		{"tasks and inputs", head + "tasks = 1\ninputs = \"*.txt\"\n", `:4: both "tasks" and "inputs" are set`, "inputs", 4},
		{"neither tasks nor inputs", head, `: neither "tasks" nor "inputs" is set`, "tasks", 0},
		{"erasure without m", head + "tasks = 1\nerasure = { k = 3 }\n", `:4: erasure needs both k and m, such as { k = 4, m = 2 }`, "erasure", 4},
		{"erasure too wide", head + "tasks = 1\nerasure = { k = 200, m = 100 }\n", `:4: erasure k = 200, m = 100: want k >= 1, m >= 0, k+m <= 256`, "erasure", 4},
		{"image without rows", head + "tasks = 4\nimage = { cols = 2 }\n", `:4: image needs both cols and rows, such as { cols = 4, rows = 4 }`, "image", 4},
		{"image not one tile per task", head + "tasks = 4\nimage = { cols = 2, rows = 3 }\n", `:4: image cols = 2, rows = 3 makes 6 tiles for 4 tasks: want one tile per task`, "image", 4},
		{"image zero cols", head + "tasks = 4\nimage = { cols = 0, rows = 4 }\n", `:4: image cols = 0, rows = 4: want both >= 1 and at most 4096 tiles`, "image", 4},
		{"unknown engine", head + "tasks = 1\nengine = \"v8\"\n", `:4: engine = "v8", want one of auto, wazero, wasmtime, wasmer`, "engine", 4},
		{"zero tasks", head + "tasks = 0\n", ":3: tasks = 0, want 1..10000000", "tasks", 3},
		{"negative tasks", head + "tasks = -4\n", ":3: tasks = -4, want 1..10000000", "tasks", 3},
		{"too many tasks", head + "tasks = 10000001\n", ":3: tasks = 10000001, want 1..10000000", "tasks", 3},
		{"missing name", "module = \"m.wasm\"\ntasks = 1\n", `: missing key "name"`, "name", 0},
		{"empty name", "name = \"  \"\nmodule = \"m.wasm\"\ntasks = 1\n", ":1: name is empty", "name", 1},
		{"missing module key", "name = \"n\"\ntasks = 1\n", `: missing key "module"`, "module", 0},
		{"missing module file", "name = \"n\"\n\nmodule = \"gone.wasm\"\ntasks = 1\n", `:3: module "gone.wasm": no such file`, "module", 3},
		{"module not wasm", "name = \"n\"\nmodule = \"job.toml\"\ntasks = 1\n", `:2: module "job.toml" is not a WebAssembly module`, "module", 2},
		{"module is a directory", "name = \"n\"\nmodule = \".\"\ntasks = 1\n", `:2: module "." is a directory`, "module", 2},
		{"glob matches nothing", head + "inputs = \"data/*.csv\"\n", `:3: inputs = "data/*.csv" matches no files`, "inputs", 3},
		{"bad glob", head + "inputs = \"data/[*.csv\"\n", `:3: inputs = "data/[*.csv": bad pattern`, "inputs", 3},
		{"bad memory unit", head + "tasks = 1\nmemory = \"12 parsecs\"\n", `:4: memory = "12 parsecs": unknown unit "parsecs"`, "memory", 4},
		{"bad max_output unit", head + "tasks = 1\nmax_output = \"lots\"\n", `:4: max_output = "lots": not a size (want a number and a unit, such as "256MiB")`, "max_output", 4},
		{"memory above 4GiB", head + "tasks = 1\nmemory = \"5GiB\"\n", `:4: memory = "5GiB" is above the 4GiB`, "memory", 4},
		{"max_output above 1GiB", head + "tasks = 1\nmax_output = \"2GiB\"\n", `:4: max_output = "2GiB" is above the 1GiB`, "max_output", 4},
		{"memory below a page", head + "tasks = 1\nmemory = \"1KiB\"\n", `:4: memory = "1KiB" is below one WebAssembly page`, "memory", 4},
		{"negative memory", head + "tasks = 1\nmemory = -1\n", `:4: memory = -1, want a positive size`, "memory", 4},
		{"memory boolean", head + "tasks = 1\nmemory = true\n", `:4: memory: want a size such as "256MiB" or a number of bytes`, "memory", 4},
		{"zero max_output", head + "tasks = 1\nmax_output = \"0MiB\"\n", `:4: max_output = "0MiB", want a positive size`, "max_output", 4},
		{"bad duration", head + "tasks = 1\ntimeout = \"30 secs\"\n", `:4: timeout = "30 secs" is not a duration`, "timeout", 4},
		{"zero duration", head + "tasks = 1\ntimeout = \"0s\"\n", `:4: timeout = "0s", want a positive duration`, "timeout", 4},
		{"negative retries", head + "tasks = 1\nretries = -1\n", ":4: retries = -1, want 0..100", "retries", 4},
		{"huge retries", head + "tasks = 1\nretries = 1000000\n", ":4: retries = 1000000, want 0..100", "retries", 4},
		{"huge priority", head + "tasks = 1\npriority = 99999999999\n", ":4: priority = 99999999999, want -100..100", "priority", 4},
		{"priority above 100", head + "tasks = 1\npriority = 101\n", ":4: priority = 101, want -100..100", "priority", 4},
		{"priority below -100", head + "tasks = 1\npriority = -101\n", ":4: priority = -101, want -100..100", "priority", 4},
		{"retries above 100", head + "tasks = 1\nretries = 101\n", ":4: retries = 101, want 0..100", "retries", 4},
		{"timeout that overflows a lease", head + "tasks = 1\ntimeout = \"2562047h47m16.854775807s\"\n", `:4: timeout = "2562047h47m16.854775807s", want at most 720h0m0s`, "timeout", 4},
		{"timeout above 30 days", head + "tasks = 1\ntimeout = \"721h\"\n", `:4: timeout = "721h", want at most 720h0m0s`, "timeout", 4},
		{"too many args", head + "tasks = 1\nargs = [" + strings.Repeat(`"a",`, MaxArgs+1) + "]\n", ":4: args has 1025 entries, want at most 1024", "args", 4},
		{"args too large", head + "tasks = 1\nargs = [\"" + strings.Repeat("a", MaxArgEnvBytes+1) + "\"]\n", ":4: args and env hold 65537 bytes, want at most 65536", "args", 4},
		{"unknown placeholder", head + "tasks = 1\nargs = [\"{indx}\"]\n", `:4: args[0] = "{indx}": unknown placeholder {indx}`, "args", 4},
		{"input without inputs", head + "tasks = 1\nargs = [\"x\", \"{input}\"]\n", `:4: args[1] = "{input}": {input} needs inputs`, "args", 4},
		{"bad env key", head + "tasks = 1\nenv = { \"A=B\" = \"x\" }\n", `:4: env key "A=B"`, "env", 4},
		{"duplicate key", head + "tasks = 1\ntasks = 2\n", ":4: tasks: key tasks is already defined", "tasks", 4},
		{"malformed TOML", head + "tasks = 1\nargs = [\"a\"\n", ":4: malformed TOML at column 12: array is incomplete", "", 4},
		{"unterminated string", "name = \"n\n", ":1: malformed TOML at column 10", "", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeJob(t, t.TempDir(), tc.body)
			_, err := ParseFile(path)
			if err == nil {
				t.Fatal("parsed without error")
			}
			if !errors.Is(err, ErrJobFile) {
				t.Errorf("error %v does not wrap ErrJobFile", err)
			}
			if !strings.Contains(err.Error(), path+tc.want) {
				t.Errorf("error:\n  %v\nwant it to contain:\n  %s", err, path+tc.want)
			}
			var je *Error
			if !errors.As(err, &je) {
				t.Fatalf("error %v is not a *tasks.Error", err)
			}
			if je.Key != tc.key || je.Line != tc.line || je.Path != path {
				t.Errorf("Error{Path %q Key %q Line %d}, want {%q %q %d}", je.Path, je.Key, je.Line, path, tc.key, tc.line)
			}
		})
	}
}

func TestParse_ReportsEveryProblem(t *testing.T) {
	path := writeJob(t, t.TempDir(), "name = \"n\"\nmodule = \"m.wasm\"\ntasks = 0\nmemory = \"12 parsecs\"\nretries = -1\n")
	_, err := ParseFile(path)
	if err == nil {
		t.Fatal("parsed without error")
	}
	for _, want := range []string{":3: tasks = 0", ":4: memory", ":5: retries"} {
		if !strings.Contains(err.Error(), path+want) {
			t.Errorf("error %q does not report %q", err, want)
		}
	}
	path = writeJob(t, t.TempDir(), "name = \"n\"\nmodule = \"m.wasm\"\ntaks = 1\nmemroy = \"1GiB\"\n")
	_, err = ParseFile(path)
	for _, want := range []string{`:3: unknown key "taks"`, `:4: unknown key "memroy" (did you mean "memory"?)`} {
		if err == nil || !strings.Contains(err.Error(), path+want) {
			t.Errorf("error %v does not report %q", err, want)
		}
	}
}

// TestParse_ReportsEveryProblemPastTypeErrorsAndUnknownKeys: an unknown key
// and a value of the wrong type do not stop the checks: every other
// problem of the file is reported with them, in file order, and a key that
// did not decode is not reported again as missing.
func TestParse_ReportsEveryProblemPastTypeErrorsAndUnknownKeys(t *testing.T) {
	path := writeJob(t, t.TempDir(), "name = 7\nmodule = \"m.wasm\"\ncolour = \"red\"\ntasks = \"ten\"\nmemory = \"12 parsecs\"\nretries = -1\n[erasure]\nk = 4\nx = 1\n")
	_, err := ParseFile(path)
	if err == nil {
		t.Fatal("parsed without error")
	}
	want := []string{
		`:1: name: want a string, not a TOML integer`,
		`:3: unknown key "colour"`,
		`:4: tasks: want an integer, not a TOML string`,
		`:5: memory = "12 parsecs"`,
		`:6: retries = -1`,
		`:7: unknown key "erasure.x"`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d problems reported, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], path+w) {
			t.Errorf("problem %d: %q, want %q", i, lines[i], path+w)
		}
	}
}

// TestParse_BuildKey: with build = "go" (or a build command) the module
// need not exist yet; CheckModule, run after the build, says whether the
// build made it. source names the Go package's directory.
func TestParse_BuildKey(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := writeJob(t, dir, "name = \"n\"\nbuild = \"go\"\nsource = \"src\"\nmodule = \"out/n.wasm\"\ntasks = 1\n")
	f, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Build != BuildGo || f.SourceDir != filepath.Join(dir, "src") || f.ModulePath != filepath.Join(dir, "out", "n.wasm") || f.Dir != dir {
		t.Fatalf("%+v", f)
	}
	err = f.CheckModule()
	if err == nil || !strings.Contains(err.Error(), path+`:4: module "out/n.wasm": no such file`) || !strings.Contains(err.Error(), `after build = "go" ran`) {
		t.Fatalf("CheckModule before the build: %v", err)
	}
	writeFile(t, filepath.Join(dir, "out", "n.wasm"), wasmHeader)
	if err := f.CheckModule(); err != nil {
		t.Fatalf("CheckModule after the build: %v", err)
	}

	f, err = ParseFile(writeJob(t, t.TempDir(), "name = \"n\"\nbuild = \"make wasm\"\nmodule = \"n.wasm\"\ntasks = 1\n"))
	if err != nil || f.Build != "make wasm" || f.SourceDir != "" {
		t.Fatalf("build command: %+v %v", f, err)
	}
	for body, want := range map[string]string{
		"name = \"n\"\nsource = \"src\"\nmodule = \"n.wasm\"\ntasks = 1\n":                  `:2: source is only used with build = "go"`,
		"name = \"n\"\nbuild = \" \"\nmodule = \"n.wasm\"\ntasks = 1\n":                     `:2: build is empty`,
		"name = \"n\"\nbuild = \"go\"\nsource = \"nope\"\nmodule = \"n.wasm\"\ntasks = 1\n": `:3: source "nope" is not a directory`,
		"name = \"n\"\nbuild = \"make\"\nsource = \".\"\nmodule = \"n.wasm\"\ntasks = 1\n":  `:3: source is only used with build = "go"`,
	} {
		p := writeJob(t, t.TempDir(), body)
		if _, err := ParseFile(p); err == nil || !strings.Contains(err.Error(), p+want) {
			t.Errorf("%q: error %v, want %q", body, err, want)
		}
	}
}

func TestParseFile_MissingFile(t *testing.T) {
	_, err := ParseFile(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, ErrJobFile) || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "nope.toml") {
		t.Errorf("error %v", err)
	}
}

func TestParse_WithoutPathUsesWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "m.wasm"), wasmHeader)
	t.Chdir(dir)
	f, err := Parse([]byte("name = \"n\"\nmodule = \"m.wasm\"\ntasks = 1\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if f.ModulePath != "m.wasm" {
		t.Errorf("module %q", f.ModulePath)
	}
	_, err = Parse([]byte("name = 1\n"), "")
	if err == nil || !strings.HasPrefix(err.Error(), "job file:1: name: want a string") {
		t.Errorf("error %v", err)
	}
}

// TestValidate_RefusesMaxOutputAboveTheLimit: a spec sent to the API (not
// parsed from a job file) is held to the same max_output bound.
func TestValidate_RefusesMaxOutputAboveTheLimit(t *testing.T) {
	spec := JobSpec{Name: "big", ModuleHash: strings.Repeat("a", 64), Tasks: 1, Timeout: time.Second, Memory: 1 << 20, MaxOutput: MaxOutput}
	if err := spec.Validate(); err != nil {
		t.Fatalf("max_output at the limit: %v", err)
	}
	spec.MaxOutput = MaxOutput + 1
	if err := spec.Validate(); err == nil || !strings.Contains(err.Error(), "max_output") {
		t.Fatalf("max_output over the limit: %v, want an error naming max_output", err)
	}
}

func TestParse_ImageKeyReachesTheSpec(t *testing.T) {
	path := writeJob(t, t.TempDir(), "name = \"m\"\nmodule = \"m.wasm\"\ntasks = 6\nimage = { cols = 3, rows = 2 }\n")
	f, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	spec := f.Spec(strings.Repeat("f", 64), nil)
	if spec.Image == nil || *spec.Image != (ImageTiles{Cols: 3, Rows: 2}) {
		t.Fatalf("spec.Image = %+v, want 3x2", spec.Image)
	}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	spec.Tasks = 5
	if err := spec.Validate(); err == nil || !strings.Contains(err.Error(), "6 tiles for 5 tasks") {
		t.Fatalf("Validate of 3x2 tiles for 5 tasks = %v, want a tiles error", err)
	}
}

func TestJobSpec_WithoutImageDecodesAsBefore(t *testing.T) {
	// A spec from a log written before the image key: no image.
	var spec JobSpec
	if err := json.Unmarshal([]byte(`{"name":"n","module":"`+strings.Repeat("f", 64)+`","tasks":1,"timeout":1000000000,"memory":65536,"max_output":1}`), &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Image != nil {
		t.Fatalf("Image = %+v, want nil", spec.Image)
	}
	b, _ := json.Marshal(&spec)
	if strings.Contains(string(b), "image") {
		t.Fatalf("a spec without an image encodes %s, want no image key", b)
	}
}
