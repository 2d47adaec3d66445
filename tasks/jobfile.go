package tasks

// Job files are TOML, read with pelletier/go-toml/v2 rather than BurntSushi/toml
// because its errors carry what a user needs to fix a file: a strict decode
// names an unknown key, and a type mismatch is a DecodeError with the key.
// The file is decoded one top-level key at a time, so one bad key does not
// hide the others' problems, and its unstable.Parser gives the line of every
// top-level key, so every problem (an unknown key, a wrong type, a bad size,
// a missing module) names its line.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// ErrJobFile is wrapped by every error from ParseFile and Parse.
var ErrJobFile = errors.New("invalid job file")

// MinMemory is the smallest memory cap a job may ask for: one WebAssembly
// page. A module cannot start with less.
const MinMemory = 64 << 10

// JobFile is a job file, parsed, checked and with its paths resolved.
type JobFile struct {
	Path       string // the job file, as given
	Name       string // required: there is no default
	Module     string // the module key as written
	ModulePath string // module path resolved against the job file's directory
	// Build says how the module is made before it is submitted: "" (it is
	// prebuilt), BuildGo (the Go package in SourceDir, for wasip1), or a
	// shell command run in Dir that writes ModulePath. The caller runs it
	// (tasks runs nothing), then CheckModule.
	Build      string
	SourceDir  string            // with BuildGo: the package's directory, resolved
	Dir        string            // the job file's directory: where a build command runs
	Args       []string          // templates with {index} {count} {input}
	Tasks      int               // len(InputPaths) when inputs is used
	InputsGlob string            // the inputs pattern as written, "" with tasks
	InputPaths []string          // sorted glob matches (files only), resolved
	Env        map[string]string // never nil
	Timeout    time.Duration     // wall clock per attempt
	Memory     uint64            // bytes of WebAssembly memory
	MaxOutput  uint64            // bytes of stdout (and of stderr)
	Retries    int
	Priority   int
	Engine     string // auto (default), wazero, wasmtime or wasmer
	// DataShards and ParityShards override the cluster's erasure coding of
	// this job's large inputs and results (0: the cluster's).
	DataShards, ParityShards int
	Seed                     uint64      // changes the tasks' random numbers; 0 by default
	Image                    *ImageTiles // the job makes an image of tiles (nil: no)
	NoCache                  bool        // cache = false: run every task, take no cached result
	// Replicas, Quorum and MaxReplicas as in JobSpec (0: the default);
	// Adaptive for replicas = "adaptive".
	Replicas, Quorum, MaxReplicas int
	Adaptive                      bool

	moduleLine int // for CheckModule's errors
}

// BuildGo is the build key's value that has the submitter build the Go
// package in source for GOOS=wasip1 GOARCH=wasm.
const BuildGo = "go"

// Error is one problem in a job file. Line is 0 when the problem has no
// single line (a missing key). It unwraps to ErrJobFile.
type Error struct {
	Path string // the job file, as given
	Line int    // 1-based; 0 when unknown
	Key  string // the key concerned, "" for malformed TOML
	Msg  string // says what is wrong and names the key
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Path, e.Msg)
}

func (e *Error) Unwrap() error { return ErrJobFile }

// rawJobFile mirrors the TOML keys. Pointers tell an absent key from a zero;
// sizes are `any` because both "256MiB" and 268435456 are accepted.
type rawJobFile struct {
	Name      *string           `toml:"name"`
	Module    *string           `toml:"module"`
	Args      []string          `toml:"args"`
	Tasks     *int64            `toml:"tasks"`
	Inputs    *string           `toml:"inputs"`
	Env       map[string]string `toml:"env"`
	Timeout   *string           `toml:"timeout"`
	Memory    any               `toml:"memory"`
	MaxOutput any               `toml:"max_output"`
	Retries   *int64            `toml:"retries"`
	Priority  *int64            `toml:"priority"`
	Engine    *string           `toml:"engine"`
	Seed      *int64            `toml:"seed"`
	Cache     *bool             `toml:"cache"`
	// Replicas is an integer or "adaptive".
	Replicas    any          `toml:"replicas"`
	Quorum      *int64       `toml:"quorum"`
	MaxReplicas *int64       `toml:"max_replicas"`
	Erasure     *erasureKeys `toml:"erasure"`
	Build       *string      `toml:"build"`
	Source      *string      `toml:"source"`
	Image       *imageKeys   `toml:"image"`
}

type imageKeys struct {
	Cols *int64 `toml:"cols"`
	Rows *int64 `toml:"rows"`
}

type erasureKeys struct {
	K *int64 `toml:"k"`
	M *int64 `toml:"m"`
}

// keyTypes says what each key holds, for type errors and "did you mean".
var keyTypes = map[string]string{
	"name":         "a string",
	"module":       "a string (the module's path)",
	"args":         "an array of strings",
	"tasks":        "an integer",
	"inputs":       `a string (a glob such as "data/*.txt")`,
	"env":          "a table of strings",
	"timeout":      `a duration string such as "30s"`,
	"memory":       `a size such as "256MiB" or a number of bytes`,
	"max_output":   `a size such as "16MiB" or a number of bytes`,
	"retries":      "an integer",
	"priority":     "an integer",
	"engine":       `"auto", "wazero", "wasmtime" or "wasmer"`,
	"seed":         "a non-negative integer",
	"cache":        "true or false",
	"replicas":     `an integer 1..16 or "adaptive"`,
	"quorum":       "an integer (agreeing results needed, 1..replicas)",
	"max_replicas": "an integer (replicas..32)",
	"erasure":      "a table { k = data shards, m = parity shards }",
	"build":        `"go" or a shell command that writes the module`,
	"source":       `a string (the Go package's directory, with build = "go")`,
	"image":        "a table { cols = tiles across, rows = tiles down }",
}

// ParseFile reads and parses the job file at path.
func ParseFile(path string) (*JobFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrJobFile, err)
	}
	return Parse(data, path)
}

// Parse parses a job file's bytes. path names the file in errors and its
// directory is the base of relative module and inputs paths. Parse checks that
// the module file exists and is WebAssembly and that inputs match files.
// Every problem it can find is reported (errors.Join of *Error values), each
// naming the file, the key and, where known, the line.
func Parse(data []byte, path string) (*JobFile, error) {
	label := path
	if label == "" {
		label = "job file"
	}
	lines := keyLines(data)
	raw, failed, decodeErrs := decodeEveryKey(label, data, lines)
	if raw == nil { // not TOML at all: nothing more can be checked
		return nil, joinErrors(decodeErrs)
	}
	c := &checker{path: label, dir: filepath.Dir(path), lines: lines, failed: failed, errs: decodeErrs}
	f := c.check(raw)
	// In file order; problems of no single line (a missing key) last.
	slices.SortStableFunc(c.errs, func(a, b *Error) int { return sortLine(a) - sortLine(b) })
	if len(c.errs) > 0 {
		return nil, joinErrors(c.errs)
	}
	f.Path = path
	return f, nil
}

// decodeEveryKey decodes the document one top-level key at a time, so that
// an unknown key or a value of the wrong type does not hide the problems of
// the other keys: each is reported, and the keys that failed are returned
// so the checks after decoding do not report them again (as "missing").
// Only a document that is not TOML at all returns a nil raw.
func decodeEveryKey(label string, data []byte, lines map[string]int) (*rawJobFile, map[string]bool, []*Error) {
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		return nil, nil, flattenDecodeError(label, err)
	}
	raw, failed := &rawJobFile{}, map[string]bool{}
	var errs []*Error
	for _, key := range slices.Sorted(maps.Keys(doc)) {
		if _, known := keyTypes[key]; !known {
			e := unknownKey(label, key, doc[key], lines[key])
			errs = append(errs, e)
			failed[key] = true
			if near := nearestKey(key); near != "" && doc[near] == nil {
				failed[near] = true // "taks": a missing "tasks" is the same mistake
			}
			continue
		}
		if err := decodeKey(raw, key, doc[key]); err != nil {
			for _, e := range flattenDecodeError(label, err) {
				e.Line = lines[key] // the line in the whole file, not in the one-key document
				errs = append(errs, e)
			}
			failed[key] = true
		}
	}
	return raw, failed, errs
}

func sortLine(e *Error) int {
	if e.Line == 0 {
		return math.MaxInt32
	}
	return e.Line
}

func joinErrors(list []*Error) error {
	errs := make([]error, len(list))
	for i, e := range list {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// decodeKey decodes one key's value into raw, strictly (an unknown key in
// a table such as erasure is an error).
func decodeKey(raw *rawJobFile, key string, value any) error {
	one, err := toml.Marshal(map[string]any{key: value})
	if err != nil {
		return err
	}
	dec := toml.NewDecoder(bytes.NewReader(one))
	dec.DisallowUnknownFields()
	return dec.Decode(raw)
}

// flattenDecodeError is decodeError as a list of *Error.
func flattenDecodeError(label string, err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, inner := range j.Unwrap() {
				walk(inner)
			}
			return
		}
		var je *Error
		if errors.As(e, &je) {
			out = append(out, je)
		}
	}
	walk(decodeError(label, err))
	return out
}

// unknownKey reports a top-level key (or table) the job file does not know.
func unknownKey(path, key string, value any, line int) *Error {
	kind := "key"
	if _, isTable := value.(map[string]any); isTable {
		kind = "table"
	}
	msg := fmt.Sprintf("unknown %s %q", kind, key)
	if near := nearestKey(key); near != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", near)
	}
	return &Error{Path: path, Line: line, Key: key, Msg: msg}
}

// decodeError turns go-toml's errors into ours, keeping key and line.
func decodeError(path string, err error) error {
	var missing *toml.StrictMissingError
	if errors.As(err, &missing) {
		errs := make([]error, 0, len(missing.Errors))
		for i := range missing.Errors {
			errs = append(errs, unknownKeyError(path, &missing.Errors[i]))
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if !errors.As(err, &de) {
		return &Error{Path: path, Msg: "malformed TOML: " + strings.TrimPrefix(err.Error(), "toml: ")}
	}
	line, col := de.Position()
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	if len(de.Key()) == 0 {
		return &Error{Path: path, Line: line, Msg: fmt.Sprintf("malformed TOML at column %d: %s", col, msg)}
	}
	key := de.Key()[0]
	if m := typeMismatch.FindStringSubmatch(msg); m != nil && keyTypes[key] != "" {
		return &Error{Path: path, Line: line, Key: key, Msg: fmt.Sprintf("%s: want %s, not a TOML %s", key, keyTypes[key], m[1])}
	}
	return &Error{Path: path, Line: line, Key: key, Msg: fmt.Sprintf("%s: %s", strings.Join(de.Key(), "."), msg)}
}

var typeMismatch = regexp.MustCompile(`^cannot decode TOML (\w+)`)

func unknownKeyError(path string, de *toml.DecodeError) *Error {
	line, _ := de.Position()
	key := strings.Join(de.Key(), ".")
	kind := "key"
	if strings.Contains(de.Error(), "table") {
		kind = "table"
	}
	msg := fmt.Sprintf("unknown %s %q", kind, key)
	if near := nearestKey(key); near != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", near)
	}
	return &Error{Path: path, Line: line, Key: key, Msg: msg}
}

// nearestKey is the known key within two edits of key, if any.
func nearestKey(key string) string {
	best, bestDist := "", 3
	for _, k := range slices.Sorted(maps.Keys(keyTypes)) {
		if d := editDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// keyLines maps each top-level key (and table header) of a valid document to
// the line where it is set.
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	var p unstable.Parser
	p.Reset(data)
	topLevel := true
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			topLevel = false
		case unstable.KeyValue:
			if !topLevel {
				continue
			}
		default:
			continue
		}
		it := e.Key()
		if it.Next() {
			name := string(it.Node().Data)
			if _, seen := lines[name]; !seen {
				lines[name] = p.Shape(it.Node().Raw).Start.Line
			}
		}
	}
	return lines
}

// checker validates a decoded file, collecting every problem.
type checker struct {
	path   string
	dir    string
	lines  map[string]int
	failed map[string]bool // keys already reported by decoding
	errs   []*Error
}

func (c *checker) fail(key, format string, a ...any) {
	if c.failed[key] {
		return // its value did not decode: that error says it all
	}
	c.errs = append(c.errs, &Error{Path: c.path, Line: c.lines[key], Key: key, Msg: fmt.Sprintf(format, a...)})
}

func (c *checker) check(raw *rawJobFile) *JobFile {
	f := &JobFile{
		Name:      c.name(raw.Name),
		Args:      raw.Args,
		Env:       c.env(raw.Env),
		Timeout:   c.timeout(raw.Timeout),
		Memory:    c.memory(raw.Memory),
		MaxOutput: c.maxOutput(raw.MaxOutput),
		Retries:   c.retries(raw.Retries),
		Priority:  c.priority(raw.Priority),
		Engine:    c.engine(raw.Engine),
		Seed:      c.seed(raw.Seed),
		NoCache:   raw.Cache != nil && !*raw.Cache,
	}
	f.DataShards, f.ParityShards = c.erasure(raw.Erasure)
	c.replication(raw, f)
	f.Dir = c.dir
	f.Build, f.SourceDir = c.build(raw.Build, raw.Source)
	if raw.Module != nil {
		f.Module = *raw.Module
	}
	f.moduleLine = c.lines["module"]
	f.ModulePath = c.module(raw.Module, f.Build != "")
	c.tasksOrInputs(raw, f)
	f.Image = c.image(raw.Image, f.Tasks)
	c.args(f.Args, f.InputsGlob != "")
	c.argEnvSize(f.Args, f.Env)
	if f.Args == nil {
		f.Args = []string{}
	}
	return f
}

func (c *checker) name(v *string) string {
	switch {
	case v == nil:
		c.fail("name", `missing key "name" (the job's name, such as name = "primes")`)
	case strings.TrimSpace(*v) == "":
		c.fail("name", "name is empty")
	case len(*v) > MaxNameBytes:
		c.fail("name", "name is %d bytes long, want at most %d", len(*v), MaxNameBytes)
	case strings.IndexFunc(*v, unicode.IsControl) >= 0:
		c.fail("name", "name %q holds a control character", *v)
	default:
		return *v
	}
	return ""
}

// module resolves the module path and, unless a build will make it, checks
// it is a WebAssembly file.
func (c *checker) module(v *string, built bool) string {
	if v == nil {
		c.fail("module", `missing key "module" (the .wasm file to run, such as module = "primes.wasm")`)
		return ""
	}
	if *v == "" {
		c.fail("module", "module is empty")
		return ""
	}
	p := c.resolve(*v)
	if !built {
		c.moduleFile(*v, p, "")
	}
	return p
}

// moduleFile checks that the module at p (written as given) is a
// WebAssembly file; after is the build that should have made it, if any.
func (c *checker) moduleFile(given, p, after string) {
	fh, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) && after == "" {
		c.fail("module", "module %q: %v: build it first (for Go: GOOS=wasip1 GOARCH=wasm go build -o %s .), or add build = \"go\" to have job submit build it",
			given, cleanPathError(err, given), given)
		return
	}
	if errors.Is(err, os.ErrNotExist) {
		c.fail("module", "module %q: %v after build = %q ran: make the build write it there, or change module", given, cleanPathError(err, given), after)
		return
	}
	if err != nil {
		c.fail("module", "module %q: %v", given, cleanPathError(err, given))
		return
	}
	defer fh.Close()
	if st, err := fh.Stat(); err == nil && st.IsDir() {
		c.fail("module", "module %q is a directory, want a .wasm file", given)
		return
	}
	magic := make([]byte, 4)
	if _, err := io.ReadFull(fh, magic); err != nil || string(magic) != "\x00asm" {
		c.fail("module", "module %q is not a WebAssembly module (no \\0asm header)", given)
	}
}

// CheckModule checks that the module file exists and is WebAssembly, as
// Parse does for a job file without a build; the caller runs the build,
// then this.
func (f *JobFile) CheckModule() error {
	c := &checker{path: f.Path, lines: map[string]int{"module": f.moduleLine}}
	if c.path == "" {
		c.path = "job file"
	}
	c.moduleFile(f.Module, f.ModulePath, f.Build)
	if len(c.errs) > 0 {
		return c.errs[0]
	}
	return nil
}

// build reads the build and source keys.
func (c *checker) build(build, source *string) (string, string) {
	switch {
	case build == nil && source != nil:
		c.fail("source", `source is only used with build = "go"`)
		return "", ""
	case build == nil:
		return "", ""
	case strings.TrimSpace(*build) == "":
		c.fail("build", `build is empty: want "go" or a shell command that writes the module`)
		return "", ""
	case *build != BuildGo && source != nil:
		c.fail("source", `source is only used with build = "go"; a build command runs in the job file's directory`)
		return *build, ""
	case *build != BuildGo:
		return *build, ""
	}
	dir := c.dir
	if source != nil {
		dir = c.resolve(*source)
	}
	if !isDir(dir) {
		c.fail("source", "source %q is not a directory (the Go package to build)", *source)
	}
	return BuildGo, dir
}

func (c *checker) resolve(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(c.dir, p)
}

// cleanPathError drops the path from an *os.PathError: the message names the
// path as written, and the resolved one only if it differs.
func cleanPathError(err error, given string) error {
	var pe *os.PathError
	if !errors.As(err, &pe) {
		return err
	}
	msg := pe.Err.Error()
	if errors.Is(err, os.ErrNotExist) {
		msg = "no such file"
	}
	if pe.Path != given {
		msg += fmt.Sprintf(" (looked for %s)", pe.Path)
	}
	return errors.New(msg)
}

func (c *checker) tasksOrInputs(raw *rawJobFile, f *JobFile) {
	switch {
	case raw.Tasks != nil && raw.Inputs != nil:
		c.fail("inputs", `both "tasks" and "inputs" are set: use tasks = N, or inputs = "glob" for one task per file`)
	case raw.Tasks == nil && raw.Inputs == nil:
		c.fail("tasks", `neither "tasks" nor "inputs" is set: use tasks = N, or inputs = "glob" for one task per file`)
	case raw.Tasks != nil:
		if n := *raw.Tasks; n < 1 || n > MaxTasks {
			c.fail("tasks", "tasks = %d, want 1..%d", n, MaxTasks)
			return
		}
		f.Tasks = int(*raw.Tasks)
	default:
		f.InputsGlob = *raw.Inputs
		f.InputPaths = c.inputs(*raw.Inputs)
		f.Tasks = len(f.InputPaths)
	}
}

func (c *checker) inputs(pattern string) []string {
	if pattern == "" {
		c.fail("inputs", "inputs is empty")
		return nil
	}
	root, rest := c.dir, pattern
	if filepath.IsAbs(pattern) {
		root, rest = filepath.VolumeName(pattern)+string(filepath.Separator), pattern[len(filepath.VolumeName(pattern)):]
	}
	matches, err := globFiles(root, rest)
	switch {
	case err != nil:
		c.fail("inputs", "inputs = %q: %v", pattern, err)
	case len(matches) == 0:
		c.fail("inputs", "inputs = %q matches no files (searched from %s)", pattern, root)
	case len(matches) > MaxTasks:
		c.fail("inputs", "inputs = %q matches %d files, want at most %d", pattern, len(matches), MaxTasks)
	default:
		return matches
	}
	return nil
}

// globFiles matches pattern (in filepath.Match syntax, one directory level per
// element) below root and returns the regular files, sorted. Unlike
// filepath.Glob(filepath.Join(root, pattern)) it treats root literally, so a
// job directory whose name holds '[' or '*' works.
func globFiles(root, pattern string) ([]string, error) {
	parts := strings.FieldsFunc(pattern, func(r rune) bool { return r == '/' || r == filepath.Separator })
	for _, p := range parts {
		if _, err := filepath.Match(p, ""); err != nil {
			return nil, fmt.Errorf("bad pattern %q", p)
		}
	}
	dirs := []string{root}
	for i, part := range parts {
		var next []string
		for _, d := range dirs {
			next = append(next, matchDir(d, part)...)
		}
		dirs = next
		if i < len(parts)-1 {
			dirs = slices.DeleteFunc(dirs, func(p string) bool { return !isDir(p) })
		}
	}
	files := slices.DeleteFunc(dirs, func(p string) bool { return !isRegular(p) })
	slices.Sort(files)
	return files, nil
}

// matchDir returns the entries of dir that match one pattern element.
func matchDir(dir, elem string) []string {
	if !hasMeta(elem) {
		p := filepath.Join(dir, elem)
		if _, err := os.Lstat(p); err != nil {
			return nil
		}
		return []string{p}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if ok, _ := filepath.Match(elem, e.Name()); ok {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func isRegular(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

var placeholder = regexp.MustCompile(`\{[A-Za-z_]+\}`)

// args rejects placeholders ExpandArgs does not know (a typo would otherwise
// reach the task as is) and {input} in a job without inputs.
func (c *checker) args(args []string, hasInputs bool) {
	for i, a := range args {
		for _, ph := range placeholder.FindAllString(a, -1) {
			switch {
			case ph == "{index}" || ph == "{count}":
			case ph == "{input}" && !hasInputs:
				c.fail("args", "args[%d] = %q: {input} needs inputs = \"glob\"", i, a)
			case ph != "{input}":
				c.fail("args", "args[%d] = %q: unknown placeholder %s (want {index}, {count} or {input})", i, a, ph)
			}
		}
		if strings.ContainsRune(a, 0) {
			c.fail("args", "args[%d] holds a NUL byte", i)
		}
	}
}

// argEnvSize applies the bounds JobSpec.Validate applies on the server.
func (c *checker) argEnvSize(args []string, env map[string]string) {
	if len(args) > MaxArgs {
		c.fail("args", "args has %d entries, want at most %d", len(args), MaxArgs)
	}
	if n := argEnvBytes(args, env); n > MaxArgEnvBytes {
		c.fail("args", "args and env hold %d bytes, want at most %d (64KiB)", n, MaxArgEnvBytes)
	}
}

func (c *checker) env(env map[string]string) map[string]string {
	for _, k := range slices.Sorted(maps.Keys(env)) {
		switch {
		case k == "" || strings.ContainsAny(k, "=\x00"):
			c.fail("env", "env key %q: want a name without '=' or NUL", k)
		case strings.ContainsRune(env[k], 0):
			c.fail("env", "env.%s holds a NUL byte", k)
		}
	}
	if env == nil {
		return map[string]string{}
	}
	return env
}

func (c *checker) timeout(v *string) time.Duration {
	if v == nil {
		return DefaultTimeout
	}
	d, err := time.ParseDuration(strings.TrimSpace(*v))
	switch {
	case err != nil:
		c.fail("timeout", `timeout = %q is not a duration (use Go syntax such as "30s", "5m" or "1h30m")`, *v)
	case d <= 0:
		c.fail("timeout", "timeout = %q, want a positive duration", *v)
	case d > TimeoutLimit:
		c.fail("timeout", "timeout = %q, want at most %v (%v unless an operator raised your credential's max_timeout)", *v, TimeoutLimit, DefaultMaxTimeout)
	}
	return d
}

func (c *checker) memory(v any) uint64 {
	if v == nil {
		return DefaultMemory
	}
	n, ok := c.size("memory", v)
	switch {
	case !ok:
	case n < MinMemory:
		c.fail("memory", "memory = %s is below one WebAssembly page (64KiB)", sizeText(v))
	case n > MaxMemory:
		c.fail("memory", "memory = %s is above the 4GiB a wasm32 module can address", sizeText(v))
	}
	return n
}

func (c *checker) maxOutput(v any) uint64 {
	if v == nil {
		return DefaultMaxOutput
	}
	n, ok := c.size("max_output", v)
	switch {
	case ok && n == 0:
		c.fail("max_output", "max_output = %s, want a positive size", sizeText(v))
	case ok && n > MaxOutput:
		c.fail("max_output", "max_output = %s is above the 1GiB a worker holds in memory per task; split the output over more tasks", sizeText(v))
	}
	return n
}

// size reads a size key: a string with a unit or a number of bytes.
func (c *checker) size(key string, v any) (uint64, bool) {
	switch v := v.(type) {
	case string:
		n, err := parseSize(v)
		if err != nil {
			c.fail(key, "%s = %q: %v", key, v, err)
			return 0, false
		}
		return n, true
	case int64:
		if v < 0 {
			c.fail(key, "%s = %d, want a positive size", key, v)
			return 0, false
		}
		return uint64(v), true
	default:
		c.fail(key, "%s: want %s, not %v", key, keyTypes[key], v)
		return 0, false
	}
}

func sizeText(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}

func (c *checker) retries(v *int64) int {
	switch {
	case v == nil:
		return DefaultRetries
	case *v < 0 || *v > MaxRetries:
		c.fail("retries", "retries = %d, want 0..%d", *v, MaxRetries)
		return 0
	}
	return int(*v)
}

func (c *checker) erasure(e *erasureKeys) (int, int) {
	if e == nil {
		return 0, 0
	}
	if e.K == nil || e.M == nil {
		c.fail("erasure", "erasure needs both k and m, such as { k = 4, m = 2 }")
		return 0, 0
	}
	k, m := *e.K, *e.M
	if k < 1 || m < 0 || k+m > MaxShards {
		c.fail("erasure", "erasure k = %d, m = %d: want k >= 1, m >= 0, k+m <= %d", k, m, MaxShards)
		return 0, 0
	}
	return int(k), int(m)
}

// image is the image key: the job's tasks write the tiles of a cols x rows
// image, one each.
func (c *checker) image(v *imageKeys, tasks int) *ImageTiles {
	if v == nil {
		return nil
	}
	if v.Cols == nil || v.Rows == nil {
		c.fail("image", "image needs both cols and rows, such as { cols = 4, rows = 4 }")
		return nil
	}
	im := &ImageTiles{Cols: int(min(max(*v.Cols, -1), MaxImageTiles+1)), Rows: int(min(max(*v.Rows, -1), MaxImageTiles+1))}
	if err := im.Check(tasks); err != nil && tasks > 0 {
		c.fail("image", "%v", err)
		return nil
	}
	return im
}

func (c *checker) engine(v *string) string {
	if v == nil {
		return EngineAuto
	}
	if !slices.Contains(Engines, *v) {
		c.fail("engine", "engine = %q, want one of %s", *v, strings.Join(Engines, ", "))
		return EngineAuto
	}
	return *v
}

func (c *checker) priority(v *int64) int {
	if v == nil {
		return 0
	}
	if *v < MinPriority || *v > MaxPriority {
		c.fail("priority", "priority = %d, want %d..%d", *v, MinPriority, MaxPriority)
		return 0
	}
	return int(*v)
}

// replication reads replicas, quorum and max_replicas; the bounds are
// JobSpec.Validate's, checked here so each error names its key and line.
func (c *checker) replication(raw *rawJobFile, f *JobFile) {
	switch v := raw.Replicas.(type) {
	case nil:
	case string:
		if v != "adaptive" {
			c.fail("replicas", `replicas = %q, want an integer 1..%d or "adaptive"`, v, MaxReplicasPerTask)
			return
		}
		f.Adaptive = true
	case int64:
		if v < 1 || v > MaxReplicasPerTask {
			c.fail("replicas", `replicas = %d, want 1..%d or "adaptive"`, v, MaxReplicasPerTask)
			return
		}
		f.Replicas = int(v)
	default:
		c.fail("replicas", `replicas = %v, want an integer 1..%d or "adaptive"`, v, MaxReplicasPerTask)
		return
	}
	if raw.Quorum != nil {
		f.Quorum = int(max(min(*raw.Quorum, MaxReplicasLimit+1), -1))
	}
	if raw.MaxReplicas != nil {
		f.MaxReplicas = int(max(min(*raw.MaxReplicas, MaxReplicasLimit+1), -1))
	}
	spec := JobSpec{Replicas: f.Replicas, Quorum: f.Quorum, MaxReplicas: f.MaxReplicas, Adaptive: f.Adaptive}
	r, _, _ := spec.Replication()
	switch {
	case f.Adaptive && raw.Quorum != nil:
		c.fail("quorum", `quorum with replicas = "adaptive": a checked task always needs %d agreeing results; remove quorum`, AdaptiveQuorum)
	case raw.Quorum != nil && (*raw.Quorum < 1 || *raw.Quorum > int64(r)):
		c.fail("quorum", "quorum = %d, want 1..%d (replicas)", *raw.Quorum, r)
	case raw.MaxReplicas != nil && (*raw.MaxReplicas < int64(r) || *raw.MaxReplicas > MaxReplicasLimit):
		c.fail("max_replicas", "max_replicas = %d, want %d..%d (replicas..%d)", *raw.MaxReplicas, r, MaxReplicasLimit, MaxReplicasLimit)
	}
}

func (c *checker) seed(v *int64) uint64 {
	if v == nil {
		return 0
	}
	if *v < 0 {
		c.fail("seed", "seed = %d, want a non-negative integer", *v)
		return 0
	}
	return uint64(*v)
}

// sizeUnits are the units ParseSize accepts, lower-cased: binary (KiB) and
// SI (kB). Bare K, M, G are refused as ambiguous.
var sizeUnits = map[string]uint64{
	"": 1, "b": 1,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
}

var sizeNumber = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?`)

// ParseSize parses a byte size: a decimal number and an optional unit, with
// or without a space between ("256MiB", "1.5 GiB", "100MB", "4096"). KiB,
// MiB, GiB, TiB are powers of 1024; kB, MB, GB, TB powers of 1000; B or no
// unit is bytes. Units are case-insensitive. A fraction of a byte is dropped.
func ParseSize(s string) (uint64, error) {
	n, err := parseSize(s)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	return n, nil
}

// parseSize is ParseSize with errors that do not repeat s.
func parseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	num := sizeNumber.FindString(t)
	if num == "" {
		return 0, errors.New(`not a size (want a number and a unit, such as "256MiB")`)
	}
	unit := strings.TrimSpace(t[len(num):])
	mult, ok := sizeUnits[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q (want B, KiB, MiB, GiB, TiB, kB, MB, GB or TB)", unit)
	}
	r, _ := new(big.Rat).SetString(num) // sizeNumber only matches valid decimals
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).SetUint64(mult)))
	whole := new(big.Int).Quo(r.Num(), r.Denom())
	if !whole.IsUint64() {
		return 0, errors.New("too large")
	}
	return whole.Uint64(), nil
}

// Spec fills a JobSpec from the file. moduleHash names the module's bytes and
// inputs (one per task, in InputPaths order; nil without inputs) the task
// inputs: see HashInputs. Slices and maps are copied.
func (f *JobFile) Spec(moduleHash string, inputs []Input) *JobSpec {
	return &JobSpec{
		Name:       f.Name,
		ModuleHash: moduleHash,
		Args:       slices.Clone(f.Args),
		Env:        maps.Clone(f.Env),
		Tasks:      f.Tasks,
		Inputs:     slices.Clone(inputs),
		Timeout:    f.Timeout,
		Memory:     f.Memory,
		MaxOutput:  f.MaxOutput,
		Retries:    f.Retries,
		Priority:   f.Priority,
		Engine:     f.Engine,
		DataShards: f.DataShards, ParityShards: f.ParityShards,
		Seed: f.Seed, Image: f.Image, NoCache: f.NoCache,
		Replicas: f.Replicas, Quorum: f.Quorum, MaxReplicas: f.MaxReplicas, Adaptive: f.Adaptive,
	}
}

// HashInputs reads the input files and returns them as Inputs (base name,
// SHA-256, size), in task order. It returns nil for a job without inputs.
func (f *JobFile) HashInputs() ([]Input, error) {
	if len(f.InputPaths) == 0 {
		return nil, nil
	}
	out := make([]Input, len(f.InputPaths))
	for i, p := range f.InputPaths {
		in, err := hashFile(p)
		if err != nil {
			return nil, fmt.Errorf("%s: input %d: %w", f.Path, i, err)
		}
		out[i] = in
	}
	return out, nil
}

func hashFile(path string) (Input, error) {
	fh, err := os.Open(path)
	if err != nil {
		return Input{}, err
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return Input{}, err
	}
	return Input{Name: filepath.Base(path), Hash: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}
