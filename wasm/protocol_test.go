package wasm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// frame encodes with a frameWriter and reads back the payload.
func frame(t *testing.T, e *encoder, blobs ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := (&frameWriter{w: &buf}).write(e, blobs...); err != nil {
		t.Fatal(err)
	}
	f, err := readFrame(bufio.NewReader(&buf))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestProtocol_RequestRoundTrips(t *testing.T) {
	for i, stdin := range [][]byte{nil, []byte("small"), bytes.Repeat([]byte{7}, smallFrame+1), nil} {
		want := &Request{
			ModuleHash: HashModule([]byte("m")), Name: "n", Args: []string{"a", ""},
			Env: map[string]string{"K": "V", "E": ""}, Stdin: stdin, Seed: 1 << 63,
			Limits: Limits{MemoryBytes: 1 << 40, Timeout: 3 * time.Second, MaxOutput: 5}, Engine: EngineWasmer,
		}
		if i == 3 {
			want.StdinPath = "/data/inputs/ab12-3 with space\u00e9"
		}
		var e encoder
		encodeRequest(&e, want)
		got, err := decodeRequest(frame(t, &e, want.Stdin))
		if err != nil {
			t.Fatal(err)
		}
		if len(want.Stdin) == 0 {
			want.Stdin = got.Stdin // nil and empty are the same to a task
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v\nwant %+v", got, want)
		}
	}
}

func TestProtocol_ResponseRoundTripsErrors(t *testing.T) {
	res := &Result{ExitCode: 3, Stdout: []byte("out"), Stderr: []byte("err"), Duration: time.Millisecond}
	for _, tc := range []struct {
		err     error
		replace bool
	}{
		{nil, false},
		{&TaskError{Kind: KindExit, Msg: "task exited with code 3"}, false},
		{timeoutError(time.Second), true},
		{ErrModuleCorrupt, false},
		{fmt.Errorf("%w: open /x: no such file or directory", ErrStdinFile), false},
		{errors.New("something else"), false},
	} {
		var e encoder
		out, errOut := encodeResponse(&e, res, tc.err, tc.replace)
		got, err, replace, derr := decodeResponse(frame(t, &e, out, errOut))
		if derr != nil || replace != tc.replace || !reflect.DeepEqual(got, res) {
			t.Fatalf("%v: got %+v replace %v, %v", tc.err, got, replace, derr)
		}
		switch {
		case tc.err == nil && err != nil, tc.err != nil && (err == nil || err.Error() != tc.err.Error()):
			t.Errorf("error %v came back as %v", tc.err, err)
		case KindOf(tc.err) != KindOf(err):
			t.Errorf("kind of %v came back as %q", tc.err, KindOf(err))
		case errors.Is(tc.err, ErrModuleCorrupt) && !errors.Is(err, ErrModuleCorrupt),
			errors.Is(tc.err, ErrStdinFile) && !errors.Is(err, ErrStdinFile):
			t.Errorf("%v lost its sentinel", err)
		}
	}
}

func TestProtocol_TruncatedFrameIsAnError(t *testing.T) {
	var e encoder
	encodeRequest(&e, &Request{ModuleHash: "h", Args: []string{"arg"}})
	f := frame(t, &e)
	for n := 1; n < len(f); n++ {
		if _, err := decodeRequest(f[:n]); !errors.Is(err, errProtocol) {
			t.Fatalf("request cut to %d of %d bytes: err = %v", n, len(f), err)
		}
	}
}
