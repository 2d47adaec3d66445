package ledger

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// fillEveryField sets every field reachable from v (embedded structs,
// slices of two elements, nested structs) to a distinct non-zero value, so a
// field a codec forgets comes back zero and differs.
func fillEveryField(t *testing.T, v reflect.Value, seed *int) {
	*seed++
	n := *seed
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if !v.Type().Field(i).IsExported() {
				t.Fatalf("%s.%s is unexported: the codec test cannot fill it", v.Type(), v.Type().Field(i).Name)
			}
			fillEveryField(t, v.Field(i), seed)
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := 0; i < v.Len(); i++ {
			fillEveryField(t, v.Index(i), seed)
		}
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d-ü", n))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(n) * -1_000_003) // negative and multi-byte
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(n))
	case reflect.Bool:
		v.SetBool(true)
	default:
		t.Fatalf("fillEveryField: %s (%s) has no filler: teach the test and the codec", v.Type(), v.Kind())
	}
}

// TestCompactCodec_RoundTripsEveryField: every field of the commands with a
// compact shape (and of the reports they carry) survives EncodeCompact and
// DecodeCommand. A field added to these structs that the codec does not
// write and read fails here.
func TestCompactCodec_RoundTripsEveryField(t *testing.T) {
	for _, c := range []Command{&LeaseTasksCommand{}, &CompleteTasksCommand{}} {
		seed := 0
		fillEveryField(t, reflect.ValueOf(c).Elem(), &seed)
		data, err := EncodeCompact(c)
		if err != nil {
			t.Fatal(err)
		}
		if !slicesContain(CompactCommandTypes(), int(data[0])) {
			t.Fatalf("%T encoded as type %d, not a compact type", c, data[0])
		}
		got, err := DecodeCommand(data)
		if err != nil {
			t.Fatalf("%T: %v", c, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("%T does not round-trip:\n got %+v\nwant %+v", c, got, c)
		}
	}
}

func slicesContain(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestCompactCodec_SmallerThanJSON: the point of the codec, checked so a
// regression to a bulky layout shows.
func TestCompactCodec_SmallerThanJSON(t *testing.T) {
	c := &CompleteTasksCommand{Worker: "worker-0001", Now: time.Now().UnixNano()}
	for i := range 8 {
		c.Reports = append(c.Reports, api.Report{TaskRef: api.TaskRef{Job: "job-0123456789abcdef", Index: 100_000 + i, Attempt: 1},
			Result: tasks.Result{Stdout: []byte(fmt.Sprintln(100_000 + i)), Duration: 40 * time.Microsecond, Engine: "wazero"}})
	}
	js, _ := Encode(c)
	bin, _ := EncodeCompact(c)
	if len(bin)*2 > len(js) {
		t.Fatalf("compact complete is %d bytes, JSON %d: expected under half", len(bin), len(js))
	}
}

// TestCompactCodec_AppliesLikeJSON: a random log applied with its leases
// and completions in compact shape gives the same responses and the same
// ledger as the log in JSON.
func TestCompactCodec_AppliesLikeJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	jsonFSM, compactFSM := NewFSM(), NewFSM()
	module, _ := Encode(&PutBlobCommand{Hash: storage.Hash(testModule), Data: testModule})
	jsonFSM.Apply(module)
	compactFSM.Apply(module)
	var compacted int
	for i, data := range randomCommands(rng, 2000) {
		c, err := DecodeCommand(data)
		if err != nil {
			t.Fatal(err)
		}
		compact, err := EncodeCompact(c)
		if err != nil {
			t.Fatal(err)
		}
		if compact[0] != data[0] {
			compacted++
		}
		a, b := jsonFSM.Apply(data), compactFSM.Apply(compact)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("command %d (%s): JSON applied to %v, compact to %v", i, CommandType(data[0]), a, b)
		}
	}
	if compacted < 500 {
		t.Fatalf("only %d of 2000 commands had a compact shape: the test is not testing it", compacted)
	}
	if jsonFSM.StateHash() != compactFSM.StateHash() {
		t.Fatal("the compact log gave another ledger than the JSON log")
	}
}

// TestCompactCodec_RejectsTruncatedAndTrailingBytes: a compact payload cut
// short or with bytes after its last field is corrupt, not read partly.
func TestCompactCodec_RejectsTruncatedAndTrailingBytes(t *testing.T) {
	for _, c := range []Command{
		&LeaseTasksCommand{Worker: "w", Max: 8, Now: 1, Slack: 2, Engines: []string{"wazero"}},
		&CompleteTasksCommand{Worker: "w", Now: 1, Reports: []api.Report{{TaskRef: api.TaskRef{Job: "j", Index: 1, Attempt: 1}, Result: tasks.Result{Stdout: []byte("1\n")}}}},
	} {
		data, _ := EncodeCompact(c)
		for cut := 1; cut < len(data); cut++ {
			if _, err := DecodeCommand(data[:cut]); !errors.Is(err, ErrCorruptCommand) {
				t.Fatalf("%T cut to %d of %d bytes: err %v, want ErrCorruptCommand", c, cut, len(data), err)
			}
		}
		_, err := DecodeCommand(append(data, 0))
		if !errors.Is(err, ErrCorruptCommand) || !strings.Contains(err.Error(), "past the end") {
			t.Fatalf("%T with a trailing byte: err %v, want a corrupt command past the end", c, err)
		}
	}
}

// TestFSM_UnknownCommandTypeStopsTheServer: a type this server does not
// know, without the ignorable flag, stops Apply (a panic: the server must
// not diverge by skipping it); with the flag, it is skipped.
func TestFSM_UnknownCommandTypeStopsTheServer(t *testing.T) {
	unknown := CommandType(100) // the first type above 100 nobody uses (len+100 hit the flag once types reached 28)
	for slicesContain(KnownCommandTypes(), int(unknown)) {
		unknown++
	}
	if unknown&IgnorableFlag != 0 {
		t.Fatalf("pick another unknown type than %d", unknown)
	}
	if got := NewFSM().Apply([]byte{byte(unknown | IgnorableFlag), '{', '}'}); got != nil {
		t.Fatalf("an unknown ignorable type applied to %v, want skipped", got)
	}
	for _, entry := range [][]byte{
		{byte(unknown), '{', '}'},
		EncodeBatch([][]byte{{byte(unknown)}}),
	} {
		func() {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), "unknown command type") {
					t.Fatalf("Apply of unknown type %d: recovered %v, want a stop naming the unknown type", unknown, r)
				}
			}()
			NewFSM().Apply(entry) // a fresh one: the stop leaves the FSM locked
		}()
	}
}

// FuzzDecodeLeaseTasksCompact: any payload decodes to a lease command or
// ErrCorruptCommand, never panics; what decodes re-encodes to the same.
func FuzzDecodeLeaseTasksCompact(f *testing.F) {
	seed, _ := EncodeCompact(&LeaseTasksCommand{Worker: "w", Max: 8, Now: 1 << 60, Slack: 5e9, Engines: []string{"wazero", "wasmer"}})
	f.Add(seed[1:])
	f.Add([]byte{})
	fuzzCompact(f, cmdLeaseTasksCompact)
}

// FuzzDecodeCompleteTasksCompact: as FuzzDecodeLeaseTasksCompact, for
// completions.
func FuzzDecodeCompleteTasksCompact(f *testing.F) {
	seed, _ := EncodeCompact(&CompleteTasksCommand{Worker: "w", Now: 1 << 60, Reports: []api.Report{
		{TaskRef: api.TaskRef{Job: "j", Index: 3, Attempt: 1}, Result: tasks.Result{Stdout: []byte("3\n"), Duration: 7, Engine: "wazero"}},
		{TaskRef: api.TaskRef{Job: "j", Index: 4, Attempt: 2}, Result: tasks.Result{ExitCode: 1, ErrorKind: "trap", Error: "x", Stderr: []byte("e"), StdoutBlob: "h"}},
	}})
	f.Add(seed[1:])
	f.Add([]byte{0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	fuzzCompact(f, cmdCompleteTasksCompact)
}

func fuzzCompact(f *testing.F, t CommandType) {
	f.Fuzz(func(tt *testing.T, payload []byte) {
		c, err := DecodeCommand(append([]byte{byte(t)}, payload...))
		if err != nil {
			if !errors.Is(err, ErrCorruptCommand) {
				tt.Fatalf("error %v is not ErrCorruptCommand", err)
			}
			return
		}
		again, err := EncodeCompact(c)
		if err != nil {
			tt.Fatal(err)
		}
		c2, err := DecodeCommand(again)
		if err != nil {
			tt.Fatalf("a re-encoded %s does not decode: %v", t, err)
		}
		if !reflect.DeepEqual(c, c2) {
			tt.Fatalf("%s does not round-trip:\n%+v\n%+v", t, c, c2)
		}
	})
}
