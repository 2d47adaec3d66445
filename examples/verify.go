package examples

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/peergrid/peergrid/tasks"
)

// ErrWrongResult is wrapped by Verify when a result is not what the example
// computes: the message names the first wrong task.
var ErrWrongResult = errors.New("wrong result")

// Verify checks an example job's results (results[i] is task i's stdout)
// against values computed here in native Go, from each task's arguments and
// input as spec gives them, without running any module. It returns nil if all
// agree, else an error wrapping ErrWrongResult that names the first wrong task.
func Verify(name string, spec *tasks.JobSpec, results [][]byte) error {
	ex, err := lookup(name)
	if err != nil {
		return err
	}
	if len(results) != spec.Tasks {
		return fmt.Errorf("%s: %w: %d results for %d tasks", name, ErrWrongResult, len(results), spec.Tasks)
	}
	if err := ex.verify(spec, results); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Summary is one line on what an example's results say ("π ≈ 3.14159 ..."),
// for the demo to print. It checks nothing: call Verify first.
func Summary(name string, spec *tasks.JobSpec, results [][]byte) (string, error) {
	ex, err := lookup(name)
	if err != nil {
		return "", err
	}
	s, err := ex.summary(spec, results)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

// wrongTask is the error for task i whose result is got instead of want.
func wrongTask(i int, got, want []byte) error {
	return fmt.Errorf("%w: task %d: got %s, want %s", ErrWrongResult, i, excerpt(got), excerpt(want))
}

// wrongTaskAt is wrongTask for long results: it shows them from the start of
// the line where they first differ, rather than their common prefix.
func wrongTaskAt(i int, got, want []byte) error {
	at := 0
	for at < len(got) && at < len(want) && got[at] == want[at] {
		at++
	}
	at = bytes.LastIndexByte(got[:at], '\n') + 1
	return fmt.Errorf("%w: task %d: from byte %d: got %s, want %s", ErrWrongResult, i, at, excerpt(got[at:]), excerpt(want[at:]))
}

// excerpt quotes the start of a result.
func excerpt(b []byte) string {
	const max = 60
	if len(b) > max {
		return fmt.Sprintf("%q... (%d bytes)", b[:max], len(b))
	}
	return fmt.Sprintf("%q", b)
}

func badArgs(i int, args []string, want string) error {
	return fmt.Errorf("task %d: args %q, want %s", i, args, want)
}

// uintArgs parses a task's arguments as n unsigned integers.
func uintArgs(i int, args []string, n int, want string) ([]uint64, error) {
	if len(args) != n {
		return nil, badArgs(i, args, want)
	}
	out := make([]uint64, n)
	for j, a := range args {
		v, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			return nil, badArgs(i, args, want)
		}
		out[j] = v
	}
	return out, nil
}

// --- primes ---

// primeTable is a plain sieve of Eratosthenes over [0, n): independent of the
// guest's segmented sieve.
type primeTable struct{ composite []bool }

func newPrimeTable(n uint64) primeTable {
	c := make([]bool, n)
	for i := uint64(0); i < n && i < 2; i++ {
		c[i] = true
	}
	for p := uint64(2); p*p < n; p++ {
		if !c[p] {
			for m := p * p; m < n; m += p {
				c[m] = true
			}
		}
	}
	return primeTable{c}
}

func (t primeTable) count(lo, hi uint64) int {
	n := 0
	for _, c := range t.composite[lo:hi] {
		if !c {
			n++
		}
	}
	return n
}

const maxPrimesLimit = 1 << 31 // Verify sieves [0, limit) in memory

func verifyPrimes(spec *tasks.JobSpec, results [][]byte) error {
	var table primeTable
	for i := range spec.Tasks {
		args := spec.TaskArgs(i)
		v, err := uintArgs(i, args, 3, "INDEX COUNT LIMIT")
		if err != nil {
			return err
		}
		index, count, limit := v[0], v[1], v[2]
		if count == 0 || index >= count || limit > maxPrimesLimit {
			return badArgs(i, args, fmt.Sprintf("INDEX below COUNT and LIMIT at most %d", maxPrimesLimit))
		}
		if uint64(len(table.composite)) != limit {
			table = newPrimeTable(limit)
		}
		want := fmt.Appendf(nil, "%d\n", table.count(index*limit/count, (index+1)*limit/count))
		if !bytes.Equal(results[i], want) {
			return wrongTask(i, results[i], want)
		}
	}
	return nil
}

func summarizePrimes(spec *tasks.JobSpec, results [][]byte) (string, error) {
	total := 0
	for i, r := range results {
		n, err := strconv.Atoi(strings.TrimSpace(string(r)))
		if err != nil {
			return "", fmt.Errorf("task %d: %q is not a count", i, r)
		}
		total += n
	}
	limit := "?"
	if spec.Tasks > 0 {
		if args := spec.TaskArgs(0); len(args) == 3 {
			limit = args[2]
		}
	}
	return fmt.Sprintf("%d primes below %s, counted in %d tasks", total, limit, len(results)), nil
}

// --- pi ---

// splitmix64 is the generator the pi guest codes by hand; replayed here.
type splitmix64 uint64

func (s *splitmix64) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func piHits(index, samples uint64) uint64 {
	rng := splitmix64(index*0x9e3779b97f4a7c15 ^ 0x5045455247524944)
	var hits uint64
	for range samples {
		z := rng.next()
		x, y := z>>33, z&0x7fffffff
		if x*x+y*y < 1<<62 {
			hits++
		}
	}
	return hits
}

const maxPiSamples = 1 << 30

func verifyPi(spec *tasks.JobSpec, results [][]byte) error {
	for i := range spec.Tasks {
		args := spec.TaskArgs(i)
		v, err := uintArgs(i, args, 2, "INDEX SAMPLES")
		if err != nil {
			return err
		}
		if v[1] > maxPiSamples {
			return badArgs(i, args, fmt.Sprintf("SAMPLES at most %d", maxPiSamples))
		}
		want := fmt.Appendf(nil, "%d %d\n", piHits(v[0], v[1]), v[1])
		if !bytes.Equal(results[i], want) {
			return wrongTask(i, results[i], want)
		}
	}
	return nil
}

// EstimatePi sums the pi example's results into an estimate of pi and the
// number of samples it rests on.
func EstimatePi(results [][]byte) (pi float64, samples uint64, err error) {
	var hits uint64
	for i, r := range results {
		var h, n uint64
		if _, err := fmt.Sscanf(string(r), "%d %d\n", &h, &n); err != nil || h > n {
			return 0, 0, fmt.Errorf("task %d: %q is not \"HITS SAMPLES\"", i, r)
		}
		hits, samples = hits+h, samples+n
	}
	if samples == 0 {
		return 0, 0, errors.New("no samples")
	}
	return 4 * float64(hits) / float64(samples), samples, nil
}

func summarizePi(_ *tasks.JobSpec, results [][]byte) (string, error) {
	pi, n, err := EstimatePi(results)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("pi ≈ %.6f from %d samples (off by %.6f)", pi, n, math.Abs(pi-math.Pi)), nil
}

// --- wordcount ---

// countWords scans text rune by rune: a word is a maximal run of letters and
// digits, lower-cased. Written apart from the guest's strings.FieldsFunc.
func countWords(text []byte) (counts map[string]int, total int) {
	counts = map[string]int{}
	var word []rune
	flush := func() {
		if len(word) > 0 {
			counts[string(word)]++
			total++
			word = word[:0]
		}
	}
	for len(text) > 0 {
		r, size := utf8.DecodeRune(text)
		text = text[size:]
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			word = append(word, unicode.ToLower(r))
		} else {
			flush()
		}
	}
	flush()
	return counts, total
}

// wordcountOutput is what the guest prints for a text named name.
func wordcountOutput(name string, text []byte) []byte {
	counts, total := countWords(text)
	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	sort.Slice(words, func(i, j int) bool {
		ci, cj := counts[words[i]], counts[words[j]]
		return ci > cj || ci == cj && words[i] < words[j]
	})
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s: %d words, %d distinct\n", name, total, len(words))
	for _, w := range words {
		fmt.Fprintf(&b, "%d %s\n", counts[w], w)
	}
	return b.Bytes()
}

func verifyWordcount(spec *tasks.JobSpec, results [][]byte) error {
	if len(spec.Inputs) != spec.Tasks {
		return fmt.Errorf("%d inputs for %d tasks, want one per task", len(spec.Inputs), spec.Tasks)
	}
	texts, err := wordcountInputs(spec.Inputs)
	if err != nil {
		return err
	}
	for i, text := range texts {
		args := spec.TaskArgs(i)
		if len(args) != 1 {
			return badArgs(i, args, "NAME")
		}
		want := wordcountOutput(args[0], text)
		if !bytes.Equal(results[i], want) {
			return wrongTaskAt(i, results[i], want)
		}
	}
	return nil
}

// wordcountInputs finds each task's input among the shipped texts, checking
// its hash where the spec gives one.
func wordcountInputs(inputs []tasks.Input) ([][]byte, error) {
	texts := make([][]byte, len(inputs))
	for i, in := range inputs {
		text, err := inputFile("src/wordcount", in.Name)
		if err != nil {
			return nil, fmt.Errorf("task %d: %w", i, err)
		}
		if sum := sha256.Sum256(text); in.Hash != "" && in.Hash != hex.EncodeToString(sum[:]) {
			return nil, fmt.Errorf("task %d: input %s is not the file shipped with the example", i, in.Name)
		}
		texts[i] = text
	}
	return texts, nil
}

func summarizeWordcount(_ *tasks.JobSpec, results [][]byte) (string, error) {
	counts := map[string]int{}
	total := 0
	for i, r := range results {
		lines := strings.Split(strings.TrimSuffix(string(r), "\n"), "\n")
		for _, l := range lines[1:] {
			n, w, ok := strings.Cut(l, " ")
			c, err := strconv.Atoi(n)
			if !ok || err != nil {
				return "", fmt.Errorf("task %d: line %q is not \"COUNT WORD\"", i, l)
			}
			counts[w] += c
			total += c
		}
	}
	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	sort.Slice(words, func(i, j int) bool {
		return counts[words[i]] > counts[words[j]] || counts[words[i]] == counts[words[j]] && words[i] < words[j]
	})
	var top []string
	for _, w := range words[:min(3, len(words))] {
		top = append(top, fmt.Sprintf("%q %d", w, counts[w]))
	}
	return fmt.Sprintf("%d words (%d distinct) in %d files; most common: %s",
		total, len(words), len(results), strings.Join(top, ", ")), nil
}

// --- tiny ---

func verifyTiny(spec *tasks.JobSpec, results [][]byte) error {
	for i := range spec.Tasks {
		want := []byte(strings.Join(spec.TaskArgs(i), " ") + "\n")
		if !bytes.Equal(results[i], want) {
			return wrongTask(i, results[i], want)
		}
	}
	return nil
}

func summarizeTiny(_ *tasks.JobSpec, results [][]byte) (string, error) {
	return fmt.Sprintf("%d tasks echoed their arguments", len(results)), nil
}
