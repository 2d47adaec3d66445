package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/internal/plainjson"
	"github.com/peergrid/peergrid/storage"
)

// readFast reads a hot body (a report, a heartbeat) into v: by fast, which
// takes the plain shape the Go client writes and reports whether it did,
// else by encoding/json on the same bytes, as readJSON would.
func readFast[T any](r *http.Request, v *T, fast func([]byte, *T) bool) error {
	body, err := readHotBody(r)
	if err != nil {
		return fmt.Errorf("%w: body: %v", errBadRequest, err)
	}
	return decodeFast(body, v, fast)
}

// readBody reads a hot request's body and decodes it with decode, as a
// worker stream decodes a frame's body.
func readBody[T any](r *http.Request, decode func([]byte) (*T, error)) (*T, error) {
	body, err := readHotBody(r)
	if err != nil {
		return nil, fmt.Errorf("%w: body: %v", errBadRequest, err)
	}
	return decode(body)
}

// decodeFast decodes a hot body already read (a request's, or a worker
// stream frame's) as readFast does.
func decodeFast[T any](body []byte, v *T, fast func([]byte, *T) bool) error {
	if fast(body, v) {
		return nil
	}
	var zero T
	*v = zero
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %v", errBadRequest, err)
	}
	return nil
}

// maxHotBody bounds a hot body; past it the body is cut, and its JSON
// refused.
const maxHotBody = 2 * storage.MaxInline

// readHotBody reads a hot request's body: into one buffer of the length
// the request announced, rather than growing one as io.ReadAll does.
func readHotBody(r *http.Request) ([]byte, error) {
	n := r.ContentLength
	if n < 0 || n > maxHotBody {
		return io.ReadAll(io.LimitReader(r.Body, maxHotBody))
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r.Body, body); err != nil {
		return nil, err
	}
	// Read whole: closed, net/http need not try to drain it before it
	// writes the answer's header.
	_ = r.Body.Close()
	return body, nil
}

// readHeartbeatJSON decodes a heartbeat body, the call every worker makes
// every few seconds, as readReportJSON does a report.
func readHeartbeatJSON(r *http.Request, req *api.HeartbeatRequest) error {
	return readFast(r, req, fastDecodeHeartbeat)
}

// fastDecodeHeartbeat decodes body into req if it has the plain shape,
// reporting whether it did; req is undefined if not.
func fastDecodeHeartbeat(body []byte, req *api.HeartbeatRequest) bool {
	return fastDecodeHeartbeatLike(body, req, nil)
}

// workerHints are the strings a stream's last heartbeat carried: a
// heartbeat that carries them again shares them, so decoding it allocates
// none of them (they were most of a heartbeat's garbage).
type workerHints struct {
	worker, address string
	engines         []string
}

// fastDecodeHeartbeatLike is fastDecodeHeartbeat sharing like's strings
// (nil: none) where the body's are equal; then it sets like to the
// heartbeat's. The shared ones are never modified, by either.
func fastDecodeHeartbeatLike(body []byte, req *api.HeartbeatRequest, like *workerHints) bool {
	p := plainJSON{plainjson.New(body)}
	var seen uint32
	self := workerFields{&req.Worker, &req.Address, &req.Cores, &req.Engines, &req.Storage, like}
	done := p.Object(func(key []byte) bool {
		if ok, known := p.workerField(key, self, &seen); known {
			return ok
		}
		var ok bool
		switch string(key) {
		case "draining":
			req.Draining, ok = p.Bool()
			return ok && p.Once(&seen, 1<<5)
		case "running":
			req.Running, ok = p.taskRefs()
			return ok && p.Once(&seen, 1<<6)
		case "held":
			req.Held, ok = p.taskRefs()
			return ok && p.Once(&seen, 1<<7)
		case "storage_only":
			req.StorageOnly, ok = p.Bool()
			return ok && p.Once(&seen, 1<<8)
		case "paused":
			req.Paused, ok = p.Bool()
			return ok && p.Once(&seen, 1<<9)
		}
		return false
	})
	p.Space()
	if !done || !p.Done() {
		return false
	}
	if like != nil {
		*like = workerHints{req.Worker, req.Address, req.Engines}
	}
	return true
}

// workerFields are where the fields a worker's heartbeat and lease both
// carry, of the worker itself, are decoded to.
type workerFields struct {
	worker, address *string
	cores           *int
	engines         *[]string
	storage         *bool
	like            *workerHints // strings to share where equal (may be nil)
}

// workerField decodes key's value into w if key is one of the worker's
// own fields (known), reporting whether it decoded once (ok). They take
// the bits 1<<0 to 1<<4 of seen.
func (p *plainJSON) workerField(key []byte, w workerFields, seen *uint32) (ok, known bool) {
	switch string(key) {
	case "worker":
		*w.worker, ok = p.StringLike(w.like.workerOr(""))
		return ok && p.Once(seen, 1<<0), true
	case "address":
		*w.address, ok = p.StringLike(w.like.addressOr(""))
		return ok && p.Once(seen, 1<<1), true
	case "cores":
		*w.cores, ok = p.Int()
		return ok && p.Once(seen, 1<<2), true
	case "engines":
		*w.engines, ok = p.StringsLike(w.like.enginesOr(nil))
		return ok && p.Once(seen, 1<<3), true
	case "storage":
		*w.storage, ok = p.Bool()
		return ok && p.Once(seen, 1<<4), true
	}
	return false, false
}

// taskRefs reads an array of task refs; null is a nil slice and [] an
// empty one, as encoding/json decodes them into a fresh struct.
func (p *plainJSON) taskRefs() ([]api.TaskRef, bool) {
	if p.Null() {
		return nil, true
	}
	var out []api.TaskRef // made at the first ref: most heartbeats' lists are empty
	var prevJob string
	ok := p.Array(func() bool {
		var ref api.TaskRef
		var seen uint32
		done := p.Object(func(key []byte) bool {
			var ok bool
			switch string(key) {
			case "job":
				ref.Job, ok = p.StringLike(prevJob)
				return ok && p.Once(&seen, 1<<0)
			case "index":
				ref.Index, ok = p.Int()
				return ok && p.Once(&seen, 1<<1)
			case "attempt":
				ref.Attempt, ok = p.Int()
				return ok && p.Once(&seen, 1<<2)
			}
			return false
		})
		prevJob = ref.Job
		if out == nil {
			out = make([]api.TaskRef, 0, 4)
		}
		out = append(out, ref)
		return done
	})
	if out == nil {
		out = noTaskRefs
	}
	return out, ok
}

// noTaskRefs is an empty list ([] rather than null), shared: its
// capacity is 0, so an append to it copies.
var noTaskRefs = []api.TaskRef{}

// readReportJSON decodes a report body. Reports are the largest body a busy
// leader decodes, a few per task, and encoding/json's reflection on them was
// some 7% of its CPU; so the shape the Go client writes (compact JSON, plain
// strings, integers) takes a hand-written path. Anything else (escapes,
// non-ASCII, floats, nulls, unknown, repeated or differently cased keys)
// falls back to encoding/json on the same bytes, so what is accepted, the
// result and every error stay what readJSON gives.
func readReportJSON(r *http.Request, req *api.ReportRequest) error {
	return readFast(r, req, fastDecodeReport)
}

// fastDecodeReport decodes body into req if it has the plain shape (see
// readReportJSON), reporting whether it did; req is undefined if not.
func fastDecodeReport(body []byte, req *api.ReportRequest) bool {
	p := plainJSON{plainjson.New(body)}
	var seen uint32
	done := p.Object(func(key []byte) bool {
		switch {
		case string(key) == "worker" && p.Once(&seen, 1):
			var ok bool
			req.Worker, ok = p.String()
			return ok
		case string(key) == "reports" && p.Once(&seen, 2):
			var ok bool
			req.Reports, ok = p.reports()
			return ok
		}
		return false
	})
	p.Space()
	return done && p.Done()
}

// reports reads an array of reports; "[]" is an empty slice, as
// encoding/json makes it (a null falls back to encoding/json).
func (p *plainJSON) reports() ([]api.Report, bool) {
	out := make([]api.Report, 0, 8)
	var prev api.Report
	ok := p.Array(func() bool {
		out = append(out, api.Report{})
		r := &out[len(out)-1]
		ok := p.report(r, &prev)
		prev = *r
		return ok
	})
	return out, ok
}

// readLeaseJSON decodes a lease body, which carries the worker's reports
// (see api.LeaseRequest.Reports), as readReportJSON does a report.
func readLeaseJSON(r *http.Request, req *api.LeaseRequest) error {
	return readFast(r, req, fastDecodeLease)
}

// fastDecodeLease decodes body into req if it has the plain shape,
// reporting whether it did; req is undefined if not.
func fastDecodeLease(body []byte, req *api.LeaseRequest) bool {
	p := plainJSON{plainjson.New(body)}
	var seen uint32
	self := workerFields{&req.Worker, &req.Address, &req.Cores, &req.Engines, &req.Storage, nil}
	done := p.Object(func(key []byte) bool {
		if ok, known := p.workerField(key, self, &seen); known {
			return ok
		}
		var ok bool
		switch string(key) {
		case "max":
			req.Max, ok = p.Int()
			return ok && p.Once(&seen, 1<<5)
		case "wait_ns":
			var d int
			d, ok = p.Int()
			req.Wait = time.Duration(d)
			return ok && p.Once(&seen, 1<<6)
		case "reports":
			req.Reports, ok = p.reports()
			return ok && p.Once(&seen, 1<<7)
		}
		return false
	})
	p.Space()
	return done && p.Done()
}

// plainJSON reads the plain subset of JSON the hot request bodies take
// (plainjson.Reader), with the request types' own readers.
type plainJSON struct{ plainjson.Reader }

// report reads one report; its job and engine strings are prev's when
// equal (a worker's reports mostly share them), so not allocated again.
func (p *plainJSON) report(r, prev *api.Report) bool {
	var seen uint32
	return p.Object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "job":
			r.Job, ok = p.StringLike(prev.Job)
			return ok && p.Once(&seen, 1<<0)
		case "index":
			r.Index, ok = p.Int()
			return ok && p.Once(&seen, 1<<1)
		case "attempt":
			r.Attempt, ok = p.Int()
			return ok && p.Once(&seen, 1<<2)
		case "exit_code":
			r.ExitCode, ok = p.Int()
			return ok && p.Once(&seen, 1<<3)
		case "stdout":
			r.Stdout, ok = p.Base64()
			return ok && p.Once(&seen, 1<<4)
		case "stderr":
			r.Stderr, ok = p.Base64()
			return ok && p.Once(&seen, 1<<5)
		case "stdout_blob":
			r.StdoutBlob, ok = p.String()
			return ok && p.Once(&seen, 1<<6)
		case "error_kind":
			r.ErrorKind, ok = p.String()
			return ok && p.Once(&seen, 1<<7)
		case "error":
			r.Error, ok = p.String()
			return ok && p.Once(&seen, 1<<8)
		case "duration_ns":
			var d int
			d, ok = p.Int()
			r.Duration = time.Duration(d)
			return ok && p.Once(&seen, 1<<9)
		case "engine":
			r.Engine, ok = p.StringLike(prev.Engine)
			return ok && p.Once(&seen, 1<<10)
		}
		return false
	})
}

// writeLeaseResponse writes a lease's answer as writeJSON would, the largest
// body a busy leader writes (encoding/json's reflection on it was some 5% of
// its CPU): appended by hand when every string in it is plain (printable
// ASCII that JSON writes as is) and every time fits RFC 3339, else by
// encoding/json. Either way the bytes decode to the same response.
func writeLeaseResponse(w http.ResponseWriter, resp api.LeaseResponse) {
	body, err := leaseAnswer(&resp)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSONBody(w, body)
}

// leaseAnswer is a lease's answer as writeJSON encodes it, for a request
// or a worker stream: by hand in the common shape, else by encoding/json.
func leaseAnswer(resp *api.LeaseResponse) ([]byte, error) {
	return appendLeaseAnswer(make([]byte, 0, 400*len(resp.Tasks)+16), resp)
}

// appendLeaseAnswer is leaseAnswer appending to b (whose bytes it
// overwrites from b[:0]).
func appendLeaseAnswer(b []byte, resp *api.LeaseResponse) ([]byte, error) {
	if body, ok := appendLeaseResponse(b[:0], resp); ok {
		return body, nil
	}
	return jsonLine(resp)
}

// jsonLine is v as json.Encoder writes it: its JSON and a newline.
func jsonLine(v any) ([]byte, error) {
	body, err := json.Marshal(v)
	return append(body, '\n'), err
}

// jsonContentType is the Content-Type of a hot answer, one shared slice:
// net/http only reads a header's values, and Header.Set would canonicalize
// the key and allocate a slice for each answer.
var jsonContentType = []string{"application/json"}

// writeJSONBody writes a 200 whose JSON body is already encoded, with its
// length, so net/http need not chunk a body past its 2 KiB buffer.
func writeJSONBody(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// writeHeartbeatResponse writes a heartbeat's answer as writeJSON would:
// by hand when it carries no repair orders and its stale tasks' job ids
// are plain strings, else by encoding/json. Either way the bytes decode to
// the same response.
func writeHeartbeatResponse(w http.ResponseWriter, resp *api.HeartbeatResponse) {
	body, err := heartbeatAnswer(resp)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSONBody(w, body)
}

// heartbeatAnswer is a heartbeat's answer as writeJSON encodes it, for a
// request or a worker stream.
func heartbeatAnswer(resp *api.HeartbeatResponse) ([]byte, error) {
	if body, ok := appendHeartbeatResponse(make([]byte, 0, 96+64*len(resp.Stale)), resp); ok {
		return body, nil
	}
	return jsonLine(resp)
}

// appendHeartbeatResponse appends resp's JSON and a newline, in
// api.HeartbeatResponse's field order with its omitempty rules, reporting
// false for a response it leaves to encoding/json (one with repair
// orders, which are rare and large).
func appendHeartbeatResponse(b []byte, resp *api.HeartbeatResponse) ([]byte, bool) {
	if len(resp.Repairs) > 0 {
		return nil, false
	}
	ok := true
	b = append(b, '{')
	field := func(key string) {
		if b[len(b)-1] != '{' {
			b = append(b, ',')
		}
		b = append(b, key...)
	}
	if len(resp.Stale) > 0 {
		field(`"stale":[`)
		for i := range resp.Stale {
			if i > 0 {
				b = append(b, ',')
			}
			b, ok = appendTaskRef(b, &resp.Stale[i], ok)
		}
		b = append(b, ']')
	}
	if resp.TTL != 0 {
		field(`"ttl_ns":`)
		b = strconv.AppendInt(b, int64(resp.TTL), 10)
	}
	if resp.PauseKeep != 0 {
		field(`"pause_keep_ns":`)
		b = strconv.AppendInt(b, int64(resp.PauseKeep), 10)
	}
	if resp.Distrusted {
		field(`"distrusted":true`)
	}
	return append(b, "}\n"...), ok
}

// appendTaskRef appends ref's JSON; ok turns false for a job id that is
// not a plain string.
func appendTaskRef(b []byte, ref *api.TaskRef, ok bool) ([]byte, bool) {
	b = append(b, `{"job":`...)
	b, ok = appendPlainString(b, ref.Job, ok)
	b = strconv.AppendInt(append(b, `,"index":`...), int64(ref.Index), 10)
	b = strconv.AppendInt(append(b, `,"attempt":`...), int64(ref.Attempt), 10)
	return append(b, '}'), ok
}

// appendLeaseResponse appends resp's JSON and a newline (as json.Encoder
// ends a value), reporting false for a response it leaves to
// encoding/json. Fields are written in api.Assignment's order, with its
// omitempty rules.
func appendLeaseResponse(b []byte, resp *api.LeaseResponse) ([]byte, bool) {
	if resp.Tasks == nil {
		b = append(b, `{"tasks":null`...)
	} else {
		b = append(b, `{"tasks":[`...)
		for i := range resp.Tasks {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendAssignment(b, &resp.Tasks[i]); !ok {
				return nil, false
			}
		}
		b = append(b, ']')
	}
	if len(resp.Accepted) > 0 {
		b = append(b, `,"accepted":[`...)
		for i, a := range resp.Accepted {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendBool(b, a)
		}
		b = append(b, ']')
	}
	return append(b, "}\n"...), true
}

func appendAssignment(b []byte, a *api.Assignment) ([]byte, bool) {
	ok := true
	str := func(key, v string, omitEmpty bool) {
		if omitEmpty && v == "" {
			return
		}
		b = append(b, key...)
		b, ok = appendPlainString(b, v, ok)
	}
	str(`{"job":`, a.Job, false)
	b = strconv.AppendInt(append(b, `,"index":`...), int64(a.Index), 10)
	b = strconv.AppendInt(append(b, `,"attempt":`...), int64(a.Attempt), 10)
	str(`,"module":`, a.ModuleHash, false)
	str(`,"name":`, a.Name, false)
	if len(a.Args) > 0 {
		b = append(b, `,"args":[`...)
		for i, arg := range a.Args {
			if i > 0 {
				b = append(b, ',')
			}
			b, ok = appendPlainString(b, arg, ok)
		}
		b = append(b, ']')
	}
	if len(a.Env) > 0 {
		b, ok = appendEnv(append(b, `,"env":`...), a.Env, ok)
	}
	if len(a.Stdin) > 0 {
		b = append(b, `,"stdin":"`...)
		b = base64.StdEncoding.AppendEncode(b, a.Stdin)
		b = append(b, '"')
	}
	str(`,"input":`, a.InputHash, true)
	b = strconv.AppendUint(append(b, `,"seed":`...), a.Seed, 10)
	b = strconv.AppendInt(append(b, `,"timeout_ns":`...), int64(a.Timeout), 10)
	b = strconv.AppendUint(append(b, `,"memory":`...), a.Memory, 10)
	b = strconv.AppendUint(append(b, `,"max_output":`...), a.MaxOutput, 10)
	str(`,"engine":`, a.Engine, true)
	str(`,"grid_engine":`, a.GridEngine, true)
	if a.K != 0 {
		b = strconv.AppendInt(append(b, `,"k":`...), int64(a.K), 10)
	}
	if a.M != 0 {
		b = strconv.AppendInt(append(b, `,"m":`...), int64(a.M), 10)
	}
	if y := a.Expiry.Year(); y < 0 || y > 9999 {
		return nil, false // encoding/json refuses it; let it say so
	}
	b = append(b, `,"expiry":"`...)
	b = a.Expiry.AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...), ok
}

// appendEnv writes env with its keys sorted, as encoding/json does.
func appendEnv(b []byte, env map[string]string, ok bool) ([]byte, bool) {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b, ok = appendPlainString(b, k, ok)
		b = append(b, ':')
		b, ok = appendPlainString(b, env[k], ok)
	}
	return append(b, '}'), ok
}

// appendPlainString quotes s, which must be printable ASCII without the
// characters encoding/json escapes ("\<>&); ok turns false, and stays so,
// for any other string.
func appendPlainString(b []byte, s string, ok bool) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			ok = false
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), ok
}

func (h *workerHints) workerOr(none string) string {
	if h == nil {
		return none
	}
	return h.worker
}

func (h *workerHints) addressOr(none string) string {
	if h == nil {
		return none
	}
	return h.address
}

func (h *workerHints) enginesOr(none []string) []string {
	if h == nil {
		return none
	}
	return h.engines
}
