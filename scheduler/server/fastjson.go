package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
)

// readReportJSON decodes a report body. Reports are the largest body a busy
// leader decodes, a few per task, and encoding/json's reflection on them was
// some 7% of its CPU; so the shape the Go client writes (compact JSON, plain
// strings, integers) takes a hand-written path. Anything else (escapes,
// non-ASCII, floats, nulls, unknown, repeated or differently cased keys)
// falls back to encoding/json on the same bytes, so what is accepted, the
// result and every error stay what readJSON gives.
func readReportJSON(r *http.Request, req *api.ReportRequest) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, 2*storage.MaxInline))
	if err != nil {
		return fmt.Errorf("%w: body: %v", errBadRequest, err)
	}
	if fastDecodeReport(body, req) {
		return nil
	}
	*req = api.ReportRequest{}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(req); err != nil {
		return fmt.Errorf("%w: body: %v", errBadRequest, err)
	}
	return nil
}

// fastDecodeReport decodes body into req if it has the plain shape (see
// readReportJSON), reporting whether it did; req is undefined if not.
func fastDecodeReport(body []byte, req *api.ReportRequest) bool {
	p := plainJSON{b: body}
	var seen uint8
	done := p.object(func(key []byte) bool {
		switch {
		case string(key) == "worker" && p.once(&seen, 1):
			var ok bool
			req.Worker, ok = p.string()
			return ok
		case string(key) == "reports" && p.once(&seen, 2):
			req.Reports = make([]api.Report, 0, 8) // "[]" is an empty slice, as encoding/json makes it
			var prev api.Report
			return p.array(func() bool {
				req.Reports = append(req.Reports, api.Report{})
				r := &req.Reports[len(req.Reports)-1]
				ok := p.report(r, &prev)
				prev = *r
				return ok
			})
		}
		return false
	})
	p.space()
	return done && p.i == len(p.b)
}

// plainJSON reads the plain subset of JSON readReportJSON takes; every
// method returns false on anything outside it.
type plainJSON struct {
	b []byte
	i int
}

// report reads one report; its job and engine strings are prev's when
// equal (a worker's reports mostly share them), so not allocated again.
func (p *plainJSON) report(r, prev *api.Report) bool {
	var seen uint16
	return p.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "job":
			r.Job, ok = p.stringLike(prev.Job)
			return ok && p.once16(&seen, 1<<0)
		case "index":
			r.Index, ok = p.int()
			return ok && p.once16(&seen, 1<<1)
		case "attempt":
			r.Attempt, ok = p.int()
			return ok && p.once16(&seen, 1<<2)
		case "exit_code":
			r.ExitCode, ok = p.int()
			return ok && p.once16(&seen, 1<<3)
		case "stdout":
			r.Stdout, ok = p.base64()
			return ok && p.once16(&seen, 1<<4)
		case "stderr":
			r.Stderr, ok = p.base64()
			return ok && p.once16(&seen, 1<<5)
		case "stdout_blob":
			r.StdoutBlob, ok = p.string()
			return ok && p.once16(&seen, 1<<6)
		case "error_kind":
			r.ErrorKind, ok = p.string()
			return ok && p.once16(&seen, 1<<7)
		case "error":
			r.Error, ok = p.string()
			return ok && p.once16(&seen, 1<<8)
		case "duration_ns":
			var d int
			d, ok = p.int()
			r.Duration = time.Duration(d)
			return ok && p.once16(&seen, 1<<9)
		case "engine":
			r.Engine, ok = p.stringLike(prev.Engine)
			return ok && p.once16(&seen, 1<<10)
		}
		return false
	})
}

// once and once16 refuse a key seen before in the same object: encoding/json
// would merge a repeated object or array into the first, which the fast
// path does not copy.
func (p *plainJSON) once(seen *uint8, bit uint8) bool {
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

func (p *plainJSON) once16(seen *uint16, bit uint16) bool {
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

func (p *plainJSON) space() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *plainJSON) expect(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// object reads {"key": value, ...}, handing each key to field, which reads
// the value.
func (p *plainJSON) object(field func(key []byte) bool) bool {
	if !p.expect('{') {
		return false
	}
	if p.expect('}') {
		return true
	}
	for {
		key, ok := p.rawString()
		if !ok || !p.expect(':') || !field(key) {
			return false
		}
		if p.expect('}') {
			return true
		}
		if !p.expect(',') {
			return false
		}
	}
}

// array reads [value, ...], each value by elem.
func (p *plainJSON) array(elem func() bool) bool {
	if !p.expect('[') {
		return false
	}
	if p.expect(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if p.expect(']') {
			return true
		}
		if !p.expect(',') {
			return false
		}
	}
}

// rawString reads a string of printable ASCII without escapes.
func (p *plainJSON) rawString() ([]byte, bool) {
	if !p.expect('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return p.b[start : p.i-1], true
		case c < 0x20 || c == '\\' || c >= 0x80:
			return nil, false
		}
		p.i++
	}
	return nil, false
}

func (p *plainJSON) string() (string, bool) {
	s, ok := p.rawString()
	return string(s), ok
}

func (p *plainJSON) stringLike(prev string) (string, bool) {
	s, ok := p.rawString()
	if string(s) == prev {
		return prev, ok
	}
	return string(s), ok
}

// base64 reads a []byte as encoding/json does: standard base64 with
// padding, "" an empty non-nil slice.
func (p *plainJSON) base64() ([]byte, bool) {
	s, ok := p.rawString()
	if !ok {
		return nil, false
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(out, s)
	return out[:n], err == nil
}

// int reads an integer as encoding/json does into an int: no leading zeros,
// no fraction or exponent, within 64 bits.
func (p *plainJSON) int() (int, bool) {
	p.space()
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	switch {
	case p.i == digits, p.b[digits] == '0' && p.i-digits > 1:
		return 0, false
	case p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E'):
		return 0, false
	}
	return parseInt64(p.b[start:p.i])
}

// parseInt64 is strconv.ParseInt(s, 10, 64) on a checked [-]digits without
// the string it would allocate.
func parseInt64(s []byte) (int, bool) {
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	limit := uint64(math.MaxInt64)
	if neg {
		limit++
	}
	var v uint64
	for _, c := range s {
		d := uint64(c - '0')
		if v > (limit-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	if neg {
		return int(-v), true
	}
	return int(v), true
}
