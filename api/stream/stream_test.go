package stream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

func TestReadWrite_RoundTrip(t *testing.T) {
	frames := []Frame{
		{Kind: KindHeartbeat, ID: 1, Body: []byte(`{"worker":"w1"}`)},
		{Kind: KindAnswer, ID: 1, Body: []byte{}},
		{Kind: KindLease, ID: 1 << 31, Body: bytes.Repeat([]byte("x"), 3*readChunk+7)},
		{Kind: KindClosing, ID: 0, Body: []byte(`{"code":401}`)},
	}
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	for _, f := range frames {
		if err := Write(w, f); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	if !bytes.Equal(buf.Bytes(), appendAll(frames)) {
		t.Fatal("Write and Append encode differently")
	}
	r := bufio.NewReader(&buf)
	for i, want := range frames {
		got, err := Read(r, MaxAnswer)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got.Kind != want.Kind || got.ID != want.ID || !bytes.Equal(got.Body, want.Body) {
			t.Fatalf("frame %d: got %v %d (%d bytes), want %v %d (%d bytes)", i, got.Kind, got.ID, len(got.Body), want.Kind, want.ID, len(want.Body))
		}
	}
	if _, err := Read(r, MaxAnswer); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func appendAll(frames []Frame) []byte {
	var b []byte
	for _, f := range frames {
		b = Append(b, f)
	}
	return b
}

func TestRead_MalformedNamesWhatWasWrong(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"unknown kind", Append(nil, Frame{Kind: 0x7f, ID: 9}), "unknown kind 0x7f (request id 9)"},
		{"too large", Append(nil, Frame{Kind: KindReport, ID: 3, Body: make([]byte, 101)}), "report frame 3: body of 101 bytes, at most 100"},
		{"header cut", []byte{byte(KindHeartbeat), 0, 0}, "header cut short"},
		{"body cut", Append(nil, Frame{Kind: KindLease, ID: 4, Body: []byte("abcdef")})[:HeaderSize+2], "lease frame 4: body of 6 bytes cut short"},
	}
	for _, c := range cases {
		_, err := Read(bufio.NewReader(bytes.NewReader(c.in)), 100)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrMalformed naming %q", c.name, err, c.want)
		}
	}
}

// TestRead_LargeAnnouncedBodyAllocatesAsItArrives: a peer announcing the
// largest body and sending a little holds only what it sent, not the body.
func TestRead_LargeAnnouncedBodyAllocatesAsItArrives(t *testing.T) {
	frame := Append(nil, Frame{Kind: KindReport, ID: 1})
	frame[5], frame[6], frame[7], frame[8] = 0x04, 0, 0, 0 // 64 MiB announced
	frame = append(frame, make([]byte, 1000)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Read(bufio.NewReader(bytes.NewReader(frame)), MaxRequest)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v, want a cut-short body", err)
	}
	ms := after.TotalAlloc - before.TotalAlloc
	if ms > 1<<20 {
		t.Fatalf("reading a 64 MiB announcement with 1000 bytes sent allocated %d bytes", ms)
	}
}

// FuzzRead: whatever the bytes, Read returns a frame within its limits or
// an error, never panics, and a frame it returns encodes back to the bytes
// it read.
func FuzzRead(f *testing.F) {
	f.Add(Append(nil, Frame{Kind: KindHeartbeat, ID: 7, Body: []byte(`{"worker":"w"}`)}))
	f.Add(Append(nil, Frame{Kind: KindError, ID: 1, Body: []byte(`{"code":403}`)}))
	f.Add([]byte{0x02, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 1 << 16
		r := bufio.NewReader(bytes.NewReader(in))
		read := 0
		for {
			fr, err := Read(r, max)
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrMalformed) {
					t.Fatalf("error %v neither io.EOF nor ErrMalformed", err)
				}
				return
			}
			if len(fr.Body) > max {
				t.Fatalf("body of %d bytes past the limit", len(fr.Body))
			}
			enc := Append(nil, fr)
			if !bytes.Equal(enc, in[read:read+len(enc)]) {
				t.Fatalf("frame %v re-encodes to other bytes", fr.Kind)
			}
			read += len(enc)
		}
	})
}

// FuzzParse: Parse agrees with Read on any bytes, split anywhere: the
// same frames, the same malformed ones, and on a prefix of a frame it asks
// for more (used 0) with need past what it holds and at most the whole
// frame's length.
func FuzzParse(f *testing.F) {
	f.Add(Append(nil, Frame{Kind: KindHeartbeat, ID: 7, Body: []byte(`{"worker":"w"}`)}), 3)
	f.Add(appendAll([]Frame{{Kind: KindLease, ID: 1, Body: []byte("ab")}, {Kind: KindReport, ID: 2}}), 12)
	f.Add([]byte{0x02, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}, 9)
	f.Fuzz(func(t *testing.T, in []byte, cut int) {
		const max = 1 << 16
		r := bufio.NewReader(bytes.NewReader(in))
		rest := in
		for {
			want, rerr := Read(r, max)
			got, used, need, perr := Parse(rest, max)
			switch {
			case rerr == io.EOF:
				if len(rest) != 0 {
					t.Fatalf("Read says EOF with %d bytes left", len(rest))
				}
				return
			case rerr != nil && perr != nil:
				if !errors.Is(perr, ErrMalformed) || perr.Error() != rerr.Error() {
					t.Fatalf("Parse: %v, Read: %v", perr, rerr)
				}
				return
			case rerr != nil: // cut short: Parse must ask for more
				if used != 0 || need <= len(rest) {
					t.Fatalf("a cut frame: used %d, need %d of %d bytes (Read: %v)", used, need, len(rest), rerr)
				}
				return
			case perr != nil || used == 0:
				t.Fatalf("Parse: %v (used %d), Read read %v %d", perr, used, want.Kind, want.ID)
			}
			if got.Kind != want.Kind || got.ID != want.ID || !bytes.Equal(got.Body, want.Body) || used != need {
				t.Fatalf("Parse %v %d (%d bytes), Read %v %d (%d bytes)", got.Kind, got.ID, len(got.Body), want.Kind, want.ID, len(want.Body))
			}
			if cut >= 0 && cut < used { // a prefix of the frame asks for more, at most the frame
				if _, pu, pn, err := Parse(rest[:cut], max); err != nil || pu != 0 || pn <= cut || pn > used {
					t.Fatalf("a %d-byte prefix of a %d-byte frame: used %d, need %d, %v", cut, used, pu, pn, err)
				}
			}
			rest = rest[used:]
		}
	})
}
