package nemesis

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/tasks"
)

// Operation kinds: the client calls a run records.
const (
	opSubmit  = "submit"
	opStatus  = "status"
	opCancel  = "cancel"
	opResults = "results"
	opPut     = "put"
	opGet     = "get"
)

// outcome is what a call's answer says about its effect.
type outcome string

const (
	outOK       outcome = "ok"
	outNotFound outcome = "not_found"
	outFinished outcome = "finished" // a cancel of a job that had finished (409)
	// outRefused: a definite error, nothing was applied (4xx, or a 503 that
	// says it is safe to retry).
	outRefused outcome = "refused"
	// outUnknown: no answer, or an error after which the call may or may
	// not have taken effect (a timeout, a cut connection, a 500).
	outUnknown outcome = "unknown"
)

// op is one client call: what was asked, when, and what came back. Times
// are since the run began.
type op struct {
	ID      int           `json:"id"`
	Client  int           `json:"client"`
	Kind    string        `json:"kind"`
	Key     string        `json:"key,omitempty"`  // job id or blob hash
	Name    string        `json:"name,omitempty"` // a submitted job's name
	Via     string        `json:"via"`            // the servers the client was given, in order
	Invoke  time.Duration `json:"invoke_ns"`
	Return  time.Duration `json:"return_ns"`
	Outcome outcome       `json:"outcome"`
	Err     string        `json:"err,omitempty"`
	Unclear bool          `json:"unclear,omitempty"` // the error does not say what went wrong
	// What a successful read saw.
	State  tasks.JobState `json:"state,omitempty"`
	Tasks  int            `json:"tasks,omitempty"`
	Done   int            `json:"done,omitempty"`
	Failed int            `json:"failed,omitempty"`
	// Wrong says what was not byte-right in a result or blob read.
	Wrong string `json:"wrong,omitempty"`
}

func (o *op) took() time.Duration { return o.Return - o.Invoke }

// write says whether the call changes the ledger.
func (o *op) write() bool { return o.Kind == opSubmit || o.Kind == opCancel || o.Kind == opPut }

// event is a step of the schedule: a nemesis starting or healing, with the
// workers that could then reach a server on the majority side.
type event struct {
	At      time.Duration   `json:"at_ns"`
	What    string          `json:"what"`
	Healthy map[string]bool `json:"healthy"` // worker -> reaches a majority server
	Heal    bool            `json:"heal,omitempty"`
}

// history is everything a run saw: client calls, the schedule and the
// observer's samples. It is written as JSON into the run's directory.
type history struct {
	mu      sync.Mutex
	start   time.Time
	Seed    int64    `json:"seed"`
	Ops     []op     `json:"ops"`
	Events  []event  `json:"events"`
	Samples []sample `json:"samples"`
}

func newHistory(seed int64) *history { return &history{start: time.Now(), Seed: seed} }

func (h *history) now() time.Duration { return time.Since(h.start) }

// add records a finished call and returns its id.
func (h *history) add(o op) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	o.ID = len(h.Ops)
	h.Ops = append(h.Ops, o)
	return o.ID
}

// setKey names the job a submit whose answer was lost created, once found.
func (h *history) setKey(id int, key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.Ops[id].Key = key
}

func (h *history) event(e event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.Events = append(h.Events, e)
}

func (h *history) sample(s sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.Samples = append(h.Samples, s)
}

// snapshot copies the records for checking.
func (h *history) snapshot() ([]op, []event, []sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]op(nil), h.Ops...), append([]event(nil), h.Events...), append([]sample(nil), h.Samples...)
}

func (h *history) save(path string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, err := json.MarshalIndent(h, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// finish records the call's end and its error.
func (o *op) finish(h *history, err error) {
	o.Return = h.now()
	o.Outcome, o.Err = classify(err)
	o.Unclear = unclear(err)
}

// classify reads a call's error: what it says about the call's effect, and
// the message.
func classify(err error) (outcome, string) {
	if err == nil {
		return outOK, ""
	}
	var se *client.StatusError
	switch {
	case errors.Is(err, client.ErrOutcomeUnknown) || !errors.As(err, &se):
		return outUnknown, err.Error()
	case se.Code == http.StatusNotFound:
		return outNotFound, err.Error()
	case se.Code == http.StatusConflict:
		return outFinished, err.Error()
	case se.Code/100 == 4:
		return outRefused, err.Error()
	case se.Code == http.StatusServiceUnavailable && strings.Contains(se.Message, "safe to retry"):
		return outRefused, err.Error()
	}
	return outUnknown, err.Error()
}

// unclear says whether an error fails to say what went wrong (a status
// with an empty message, as a 503 to a HEAD has).
func unclear(err error) bool {
	var se *client.StatusError
	return errors.As(err, &se) && strings.TrimSpace(se.Message) == ""
}
