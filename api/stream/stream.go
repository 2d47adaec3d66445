package stream

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Path is the route that upgrades to a worker stream, and Protocol the
// Upgrade token both sides must name.
const (
	Path     = "/v1/stream"
	Protocol = "peergrid-worker/1"
)

// FeaturesHeader, in the upgrade request, lists (comma-separated) the
// optional features a client speaks; the server's 101 lists those of them
// it serves. A server that does not know the header ignores it and lists
// none, so either side may be older than the other.
const FeaturesHeader = "Peergrid-Stream-Features"

// FeatureQuietHeartbeats: the client may send KindQuietHeartbeat, which
// the server answers only when the answer says something new. An
// unchanged heartbeat's answer was a third of what a heartbeat cost the
// leader (one write syscall, and the client's wake-up to read it).
const FeatureQuietHeartbeats = "quiet-heartbeats"

// Kind says what a frame carries.
type Kind byte

// Requests (client to server) have the high bit clear; answers and the
// server's last word have it set. The numbers are the wire format: add
// new kinds, never renumber.
const (
	KindHeartbeat Kind = 0x01 // body: api.HeartbeatRequest; answer: api.HeartbeatResponse, or empty (Unchanged)
	KindLease     Kind = 0x02 // body: api.LeaseRequest; answer: api.LeaseResponse
	KindReport    Kind = 0x03 // body: api.ReportRequest; answer: api.ReportResponse
	// KindQuietHeartbeat is a heartbeat answered only when its answer
	// would not be Unchanged (or it failed): a client sends it only on a
	// stream whose 101 named FeatureQuietHeartbeats.
	KindQuietHeartbeat Kind = 0x04
	KindAnswer         Kind = 0x80 // the answer to the request with the same id
	KindError          Kind = 0x81 // the request with the same id failed: body Error
	KindClosing        Kind = 0x82 // id 0: the server ends the stream, body Error says why
)

// IsRequest reports whether k is a request a client may send.
func (k Kind) IsRequest() bool {
	return k == KindHeartbeat || k == KindLease || k == KindReport || k == KindQuietHeartbeat
}

// IsHeartbeat reports whether k is a heartbeat, answered always or only
// when it has something to say.
func (k Kind) IsHeartbeat() bool { return k == KindHeartbeat || k == KindQuietHeartbeat }

func (k Kind) String() string {
	switch k {
	case KindHeartbeat:
		return "heartbeat"
	case KindLease:
		return "lease"
	case KindReport:
		return "report"
	case KindQuietHeartbeat:
		return "quiet heartbeat"
	case KindAnswer:
		return "answer"
	case KindError:
		return "error"
	case KindClosing:
		return "closing"
	}
	return fmt.Sprintf("kind 0x%02x", byte(k))
}

// HeaderSize is a frame's fixed header: kind (1 byte), request id (4
// bytes, big-endian), body length (4 bytes, big-endian).
const HeaderSize = 9

// Limits both sides enforce.
const (
	// MaxRequest bounds a request frame's body: what the HTTP routes take
	// (twice the largest inline blob, for a report's stdout and stderr).
	MaxRequest = 64 << 20
	// MaxAnswer bounds an answer frame's body (a lease's assignments).
	MaxAnswer = 128 << 20
	// MaxInFlight bounds the requests one stream has unanswered: the Go
	// client sends no more, and a server serving this many leases and
	// reports reads no further frame until one is answered.
	MaxInFlight = 16
)

// Unchanged is the body of a heartbeat's answer that has nothing new to
// say: no stale attempts, no repair orders, not distrusted, and the TTL
// and pause keep of the first answer on this stream. A busy grid's
// heartbeats are almost all of this kind, so neither side encodes or
// decodes anything for them.
var Unchanged = []byte{}

// Frame is one message.
type Frame struct {
	Kind Kind
	ID   uint32
	Body []byte
}

// Error is the JSON body of KindError and KindClosing: the HTTP status the
// same request would have had, its message, and whether the request was
// certainly not applied (RetrySafe: send it again elsewhere).
type Error struct {
	Code      int    `json:"code"`
	Error     string `json:"error"`
	RetrySafe bool   `json:"retry_safe,omitempty"`
}

// ErrMalformed wraps every error of a frame that breaks the format.
var ErrMalformed = errors.New("malformed stream frame")

// readChunk is how much of a large body is read before more is
// allocated: a peer announcing a large body must send it to make the
// reader hold it.
const readChunk = 64 << 10

// Read reads one frame whose body is at most max bytes. A clean end
// before a frame starts is io.EOF; a frame cut short, too large, or of no
// known kind is an error wrapping ErrMalformed that names what was wrong.
func Read(r *bufio.Reader, max int) (Frame, error) {
	var h [HeaderSize]byte
	if n, err := io.ReadFull(r, h[:]); err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return Frame{}, io.EOF
		}
		return Frame{}, cut("header", err)
	}
	f, n, err := parseHeader(h[:], max)
	if err != nil {
		return f, err
	}
	body, err := readBody(r, n)
	if err != nil {
		return f, cut(fmt.Sprintf("%s frame %d: body of %d bytes", f.Kind, f.ID, n), err)
	}
	f.Body = body
	return f, nil
}

// Parse parses the frame at the start of b, whose body is at most max
// bytes, without copying: f.Body aliases b. used is how many bytes of b
// the frame takes, 0 while b does not hold it whole; need is then how
// many bytes it takes in all (HeaderSize while its header is not there
// either). A reader that gathers a stream's bytes in its own buffer uses
// it to serve the frames it holds and learn how much more to read. Its
// errors are Read's.
func Parse(b []byte, max int) (f Frame, used, need int, err error) {
	if len(b) < HeaderSize {
		return Frame{}, 0, HeaderSize, nil
	}
	f, n, err := parseHeader(b[:HeaderSize], max)
	if err != nil {
		return f, 0, 0, err
	}
	need = HeaderSize + n
	if len(b) < need {
		return Frame{}, 0, need, nil
	}
	f.Body = b[HeaderSize:need:need]
	return f, need, need, nil
}

// parseHeader decodes a frame's header, checking its kind and that its
// body is at most max bytes long.
func parseHeader(h []byte, max int) (Frame, int, error) {
	f := Frame{Kind: Kind(h[0]), ID: binary.BigEndian.Uint32(h[1:5])}
	n := binary.BigEndian.Uint32(h[5:9])
	if !f.Kind.IsRequest() && f.Kind != KindAnswer && f.Kind != KindError && f.Kind != KindClosing {
		return f, 0, fmt.Errorf("%w: unknown kind 0x%02x (request id %d)", ErrMalformed, byte(f.Kind), f.ID)
	}
	if uint64(n) > uint64(max) {
		return f, 0, fmt.Errorf("%w: %s frame %d: body of %d bytes, at most %d", ErrMalformed, f.Kind, f.ID, n, max)
	}
	return f, int(n), nil
}

// readBody reads n bytes, allocating as they arrive past readChunk.
func readBody(r io.Reader, n int) ([]byte, error) {
	if n <= readChunk {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	var b []byte
	for len(b) < n {
		start := len(b)
		end := min(n, max(2*start, readChunk))
		b = slices.Grow(b, end-start)[:end]
		if _, err := io.ReadFull(r, b[start:end]); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func cut(what string, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %s cut short", ErrMalformed, what)
	}
	return fmt.Errorf("reading %s: %w", what, err)
}

// Append appends f's encoding to b.
func Append(b []byte, f Frame) []byte {
	b = append(b, byte(f.Kind))
	b = binary.BigEndian.AppendUint32(b, f.ID)
	b = binary.BigEndian.AppendUint32(b, uint32(len(f.Body)))
	return append(b, f.Body...)
}

// Write writes f to w (buffered: the caller flushes).
func Write(w *bufio.Writer, f Frame) error {
	var h [HeaderSize]byte
	h[0] = byte(f.Kind)
	binary.BigEndian.PutUint32(h[1:5], f.ID)
	binary.BigEndian.PutUint32(h[5:9], uint32(len(f.Body)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(f.Body)
	return err
}
