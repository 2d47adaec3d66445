package plainjson

import (
	"bytes"
	"encoding/base64"
	"math"
)

// Reader reads the plain subset of JSON: compact or spaced objects and
// arrays, strings of printable ASCII without escapes, integers, true,
// false and null. Every method returns false on anything outside it, so
// its caller can fall back to encoding/json on the same bytes.
type Reader struct {
	b []byte
	i int
}

// New reads b.
func New(b []byte) Reader { return Reader{b: b} }

// Done reports whether everything was read, trailing space included (a
// request's body has none; a caller that allows it, as after a lease
// answer's newline, calls Space first).
func (p *Reader) Done() bool { return p.i == len(p.b) }

// Strings reads an array of strings (null: nil).
func (p *Reader) Strings() ([]string, bool) {
	if p.Null() {
		return nil, true
	}
	out := make([]string, 0, 2)
	ok := p.Array(func() bool {
		s, ok := p.String()
		out = append(out, s)
		return ok
	})
	return out, ok
}

// StringsLike is Strings, returning like itself when the array holds
// the same strings.
func (p *Reader) StringsLike(like []string) ([]string, bool) {
	if like == nil {
		return p.Strings()
	}
	start := p.i
	i := 0
	ok := p.Array(func() bool {
		s, ok := p.RawString()
		if !ok || i >= len(like) || string(s) != like[i] {
			return false
		}
		i++
		return true
	})
	if ok && i == len(like) {
		return like, true
	}
	p.i = start
	return p.Strings()
}

// Null reads a literal null if one is next.
func (p *Reader) Null() bool { return p.Literal("null") }

// Literal reads word (true, false, null) if it is next.
func (p *Reader) Literal(word string) bool {
	p.Space()
	if bytes.HasPrefix(p.b[p.i:], []byte(word)) {
		p.i += len(word)
		return true
	}
	return false
}

// Bool reads true or false.
func (p *Reader) Bool() (bool, bool) {
	switch {
	case p.Literal("true"):
		return true, true
	case p.Literal("false"):
		return false, true
	}
	return false, false
}

// Once refuses a key seen before in the same object: encoding/json
// would merge a repeated object or array into the first, which the fast
// path does not copy.
func (p *Reader) Once(seen *uint32, bit uint32) bool {
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

// Space skips JSON white space.
func (p *Reader) Space() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

// Expect reads c, after any space, if it is next.
func (p *Reader) Expect(c byte) bool {
	p.Space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// Object reads {"key": value, ...}, handing each key to field, which reads
// the value.
func (p *Reader) Object(field func(key []byte) bool) bool {
	if !p.Expect('{') {
		return false
	}
	if p.Expect('}') {
		return true
	}
	for {
		key, ok := p.RawString()
		if !ok || !p.Expect(':') || !field(key) {
			return false
		}
		if p.Expect('}') {
			return true
		}
		if !p.Expect(',') {
			return false
		}
	}
}

// Array reads [value, ...], each value by elem.
func (p *Reader) Array(elem func() bool) bool {
	if !p.Expect('[') {
		return false
	}
	if p.Expect(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if p.Expect(']') {
			return true
		}
		if !p.Expect(',') {
			return false
		}
	}
}

// RawString reads a string of printable ASCII without escapes.
func (p *Reader) RawString() ([]byte, bool) {
	if !p.Expect('"') {
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

// String reads a plain string (see RawString).
func (p *Reader) String() (string, bool) {
	s, ok := p.RawString()
	return string(s), ok
}

// StringLike is String, returning prev itself when equal: a body's
// strings that repeat the last one's are not allocated again.
func (p *Reader) StringLike(prev string) (string, bool) {
	s, ok := p.RawString()
	if string(s) == prev {
		return prev, ok
	}
	return string(s), ok
}

// Base64 reads a []byte as encoding/json does: standard base64 with
// padding, "" an empty non-nil slice.
func (p *Reader) Base64() ([]byte, bool) {
	s, ok := p.RawString()
	if !ok {
		return nil, false
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(out, s)
	return out[:n], err == nil
}

// Int reads an integer as encoding/json does into an int: no leading zeros,
// no fraction or exponent, within 64 bits.
func (p *Reader) Int() (int, bool) {
	neg, digits, ok := p.integer(true)
	if !ok {
		return 0, false
	}
	limit := uint64(math.MaxInt64)
	if neg {
		limit++
	}
	v, ok := digitsValue(digits, limit)
	if neg {
		return int(-v), ok
	}
	return int(v), ok
}

// Uint64 reads an integer as encoding/json does into a uint64: no sign,
// no leading zeros, no fraction or exponent, within 64 bits.
func (p *Reader) Uint64() (uint64, bool) {
	_, digits, ok := p.integer(false)
	if !ok {
		return 0, false
	}
	return digitsValue(digits, math.MaxUint64)
}

// integer reads an integer's text: a minus if signed allows one, then
// digits without leading zeros, followed by no fraction, exponent or
// minus (which would make it no integer JSON has).
func (p *Reader) integer(signed bool) (neg bool, digits []byte, ok bool) {
	p.Space()
	if signed && p.i < len(p.b) && p.b[p.i] == '-' {
		neg = true
		p.i++
	}
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	switch {
	case p.i == start, p.b[start] == '0' && p.i-start > 1:
		return false, nil, false
	case p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E' || p.b[p.i] == '-'):
		return false, nil, false
	}
	return neg, p.b[start:p.i], true
}

// digitsValue is the value of checked decimal digits, false above limit:
// strconv's parsing without the string it would allocate.
func digitsValue(digits []byte, limit uint64) (uint64, bool) {
	var v uint64
	for _, c := range digits {
		d := uint64(c - '0')
		if v > (limit-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}
