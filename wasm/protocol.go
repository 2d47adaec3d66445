package wasm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// The executor protocol: frames over two pipes that are the child's fds 3
// (requests) and 4 (a hello, then one response per request); the child's
// stdin is /dev/null and its stdout goes with its stderr, so nothing a
// library does with stdio can touch the protocol. A frame is an 8-byte
// big-endian payload length and the payload; the payload is a type byte,
// small fields as varints and length-prefixed strings, and the large byte
// fields (stdin, stdout, stderr) last, so they are written from and read
// into place without copies. A request whose stdin is a file
// (Request.StdinPath) carries the path, not the bytes: the child opens it.

// protocolVersion 3 added the stdin path to requests and ErrStdinFile to
// the plain errors; 4 the stdout spill file (path and threshold in
// requests, size and spilled in responses) and ErrStdoutFile; 5 the module
// time to responses; 6 the executor's CPU time to responses.
const protocolVersion = 6

const (
	frameHello    = 'H'
	frameRequest  = 'Q'
	frameResponse = 'R'
)

// maxFrame guards against a corrupt length taking all memory.
const maxFrame = 1 << 36

// smallFrame is the size under which a frame is written with one syscall.
const smallFrame = 64 << 10

var errProtocol = errors.New("executor protocol error")

type encoder struct{ b []byte }

func (e *encoder) byte(c byte)       { e.b = append(e.b, c) }
func (e *encoder) uvarint(v uint64)  { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)    { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) str(s string)      { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) reset(t byte)      { e.b = append(e.b[:0], 0, 0, 0, 0, 0, 0, 0, 0, t) }
func (e *encoder) payloadLen() int64 { return int64(len(e.b) - 8) }

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated frame", errProtocol)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) str() string { return string(d.bytes(d.uvarint())) }

// frameWriter writes whole frames; the lock keeps an executor's watchdog
// and its serve loop from interleaving.
type frameWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// write sends the header in e (made with reset) followed by blobs.
func (fw *frameWriter) write(e *encoder, blobs ...[]byte) error {
	n := e.payloadLen()
	for _, b := range blobs {
		n += int64(len(b))
	}
	binary.BigEndian.PutUint64(e.b[:8], uint64(n))
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if n < smallFrame {
		for _, b := range blobs {
			e.b = append(e.b, b...)
		}
		_, err := fw.w.Write(e.b)
		return err
	}
	for _, b := range append([][]byte{e.b}, blobs...) {
		if _, err := fw.w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// peekFrameSize waits for the next frame's header and returns its payload
// size, without consuming it; false at the end of the stream.
func peekFrameSize(r *bufio.Reader) (uint64, bool) {
	hdr, err := r.Peek(8)
	if err != nil {
		return 0, false
	}
	return binary.BigEndian.Uint64(hdr), true
}

func readFrame(r *bufio.Reader) ([]byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint64(hdr[:])
	if n == 0 || n > maxFrame {
		return nil, fmt.Errorf("%w: frame of %d bytes", errProtocol, n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

func encodeHello(e *encoder, pid int) {
	e.reset(frameHello)
	e.uvarint(protocolVersion)
	e.uvarint(uint64(pid))
}

func decodeHello(f []byte) (pid int, err error) {
	d := decoder{b: f}
	if d.byte() != frameHello {
		return 0, fmt.Errorf("%w: expected hello", errProtocol)
	}
	if v := d.uvarint(); d.err == nil && v != protocolVersion {
		return 0, fmt.Errorf("%w: executor speaks version %d, want %d", errProtocol, v, protocolVersion)
	}
	pid = int(d.uvarint())
	return pid, d.err
}

// encodeRequest writes req's fields; stdin goes after as a blob.
func encodeRequest(e *encoder, req *Request) {
	e.reset(frameRequest)
	e.str(req.ModuleHash)
	e.str(req.Name)
	e.uvarint(uint64(len(req.Args)))
	for _, a := range req.Args {
		e.str(a)
	}
	keys := sortedEnv(req.Env)
	e.uvarint(uint64(len(keys)))
	for _, k := range keys {
		e.str(k)
		e.str(req.Env[k])
	}
	e.uvarint(req.Seed)
	e.uvarint(req.Limits.MemoryBytes)
	e.varint(int64(req.Limits.Timeout))
	e.varint(req.Limits.MaxOutput)
	e.str(req.Engine)
	e.str(req.StdinPath)
	e.str(req.StdoutPath)
	e.varint(req.StdoutSpill)
	var flags byte
	if req.measureCPU {
		flags |= reqMeasureCPU
	}
	e.byte(flags)
	e.uvarint(uint64(len(req.Stdin)))
}

func decodeRequest(f []byte) (*Request, error) {
	d := decoder{b: f}
	if d.byte() != frameRequest {
		return nil, fmt.Errorf("%w: expected request", errProtocol)
	}
	req := &Request{ModuleHash: d.str(), Name: d.str()}
	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		req.Args = append(req.Args, d.str())
	}
	if n := d.uvarint(); n > 0 && d.err == nil {
		req.Env = make(map[string]string, min(n, 1024))
		for ; n > 0 && d.err == nil; n-- {
			k := d.str()
			req.Env[k] = d.str()
		}
	}
	req.Seed = d.uvarint()
	req.Limits.MemoryBytes = d.uvarint()
	req.Limits.Timeout = time.Duration(d.varint())
	req.Limits.MaxOutput = d.varint()
	req.Engine = d.str()
	req.StdinPath = d.str()
	req.StdoutPath = d.str()
	req.StdoutSpill = d.varint()
	req.measureCPU = d.byte()&reqMeasureCPU != 0
	req.Stdin = d.bytes(d.uvarint())
	return req, d.err
}

// Request flags.
const reqMeasureCPU = 1 // Result.CPUTime is wanted

// Response flags.
const (
	respHasResult = 1 << iota // the module ran: a Result follows
	respReplace               // the executor is exiting: replace it
	respSpilled               // stdout is in the request's StdoutPath
)

// Codes for errors that are not the task's fault, so the parent can give
// back an error that still matches the sentinel. ErrExecutor stays last: it
// is the code of every other error.
var plainErrors = []error{nil, ErrModuleNotFound, ErrModuleCorrupt, ErrInvalidRequest, ErrEngineUnavailable, ErrStdinFile, ErrStdoutFile, ErrExecutor}

func encodeResponse(e *encoder, res *Result, err error, replace bool) (stdout, stderr []byte) {
	e.reset(frameResponse)
	var flags byte
	if res != nil {
		flags |= respHasResult
	} else {
		res = &Result{}
	}
	if replace {
		flags |= respReplace
	}
	if res.StdoutSpilled {
		flags |= respSpilled
	}
	e.byte(flags)
	e.varint(int64(res.ExitCode))
	e.varint(int64(res.Duration))
	e.varint(int64(res.ModuleTime))
	e.varint(int64(res.CPUTime))
	e.str(res.Engine)
	e.varint(res.StdoutSize)
	encodeError(e, err)
	e.uvarint(uint64(len(res.Stdout)))
	e.uvarint(uint64(len(res.Stderr)))
	return res.Stdout, res.Stderr
}

func encodeError(e *encoder, err error) {
	var te *TaskError
	switch {
	case err == nil:
		e.str("")
		e.str("")
		e.byte(0)
	case errors.As(err, &te):
		e.str(string(te.Kind))
		e.str(te.Msg)
		e.byte(0)
	default:
		e.str("")
		e.str(err.Error())
		code := len(plainErrors) - 1 // ErrExecutor unless a known sentinel
		for i, s := range plainErrors[1:] {
			if errors.Is(err, s) {
				code = i + 1
				break
			}
		}
		e.byte(byte(code))
	}
}

func decodeResponse(f []byte) (res *Result, err error, replace bool, derr error) {
	d := decoder{b: f}
	if d.byte() != frameResponse {
		return nil, nil, true, fmt.Errorf("%w: expected response", errProtocol)
	}
	flags := d.byte()
	r := &Result{ExitCode: int(d.varint()), Duration: time.Duration(d.varint()), ModuleTime: time.Duration(d.varint()), CPUTime: time.Duration(d.varint()), Engine: d.str(), StdoutSize: d.varint(), StdoutSpilled: flags&respSpilled != 0}
	kind, msg, code := Kind(d.str()), d.str(), d.byte()
	nOut, nErr := d.uvarint(), d.uvarint()
	r.Stdout, r.Stderr = d.bytes(nOut), d.bytes(nErr)
	if d.err != nil {
		return nil, nil, true, d.err
	}
	switch {
	case kind != "":
		err = &TaskError{Kind: kind, Msg: msg}
	case int(code) >= len(plainErrors):
		return nil, nil, true, fmt.Errorf("%w: unknown error code %d", errProtocol, code)
	case code != 0:
		err = &remoteError{msg: msg, sentinel: plainErrors[code]}
	}
	if flags&respHasResult != 0 {
		res = r
	}
	return res, err, flags&respReplace != 0, nil
}

// remoteError is a plain error from an executor: its text, and the
// sentinel it wrapped there.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// appendRequestFrame appends req to buf as a whole frame: its header, its
// fields (encoded in e) and its stdin.
func appendRequestFrame(buf []byte, e *encoder, req *Request) []byte {
	encodeRequest(e, req)
	binary.BigEndian.PutUint64(e.b[:8], uint64(e.payloadLen()+int64(len(req.Stdin))))
	buf = append(buf, e.b...)
	return append(buf, req.Stdin...)
}

// writeRaw sends frames already whole (appendRequestFrame) in one write.
func (fw *frameWriter) writeRaw(frames []byte) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	_, err := fw.w.Write(frames)
	return err
}
