package wasm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/peergrid/peergrid/internal/wasmtest"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// The WASI answers a task gets, checked on every engine: the same errno for
// every call, and the same bytes written, as the reference implementation
// (wasi_reference_test.go compares with it where this build has wasmtime).

// wasiProbe is one probe module: calls, the errnos they must return, and
// data placed in memory first.
type wasiProbe struct {
	name   string
	data   map[uint32][]byte
	calls  []wasmtest.ProbeCall
	errnos []uint32
}

func pc(name string, args ...int64) wasmtest.ProbeCall {
	return wasmtest.ProbeCall{Name: name, Args: args}
}

// Memory the probes point at: outputs inside the dumped region (from
// wasmtest.ProbeDump), inputs above it.
const (
	probeOut    = wasmtest.ProbeDump // outputs, 8-byte slots
	probeIOVec  = 8192               // one iovec: 16 bytes at probeBytes
	probeBytes  = 9000
	probePath   = 9100 // "file.txt"
	probeSubs   = 12000
	probeScrap  = 20000 // outputs that differ run to run on the reference (clock readings)
	probeEvents = probeOut + 1024
)

func probeData(subs ...[]byte) map[uint32][]byte {
	iov := make([]byte, 8)
	binary.LittleEndian.PutUint32(iov, probeBytes)
	binary.LittleEndian.PutUint32(iov[4:], 16)
	d := map[uint32][]byte{probeIOVec: iov, probeBytes: []byte("abcdefghijklmnop"), probePath: []byte("file.txt")}
	if len(subs) > 0 {
		d[probeSubs] = bytes.Join(subs, nil)
	}
	return d
}

// subscription encodes a poll_oneoff subscription: tag 0 clock (id, timeout
// ns, flags), 1 fd_read, 2 fd_write (fd).
func subscription(userdata uint64, tag byte, idOrFd uint32, timeout uint64, flags uint16) []byte {
	b := make([]byte, subSize)
	binary.LittleEndian.PutUint64(b, userdata)
	b[8] = tag
	binary.LittleEndian.PutUint32(b[16:], idOrFd)
	binary.LittleEndian.PutUint64(b[24:], timeout)
	binary.LittleEndian.PutUint16(b[40:], flags)
	return b
}

func poll(n int) wasmtest.ProbeCall {
	return pc("poll_oneoff", probeSubs, probeEvents, int64(n), probeOut+1016)
}

var wasiProbes = []wasiProbe{
	{"clocks", probeData(), []wasmtest.ProbeCall{
		pc("clock_res_get", 0, probeOut), pc("clock_res_get", 1, probeOut+8), pc("clock_res_get", 2, probeOut+16),
		pc("clock_res_get", 3, probeOut+16), pc("clock_time_get", 0, 1, probeScrap), pc("clock_time_get", 1, 1, probeScrap),
		pc("clock_time_get", 2, 1, probeScrap), pc("clock_time_get", 3, 1, probeScrap),
	}, []uint32{0, 0, 8, 8, 0, 0, 8, 8}},
	{"stdio streams", probeData(), []wasmtest.ProbeCall{
		pc("fd_fdstat_get", 0, probeOut), pc("fd_fdstat_get", 1, probeOut+24), pc("fd_fdstat_get", 2, probeOut+48),
		pc("fd_fdstat_get", 3, probeOut+72), pc("fd_filestat_get", 0, probeOut+96), pc("fd_filestat_get", 5, probeOut+96),
		pc("fd_seek", 0, 0, 0, probeOut+160), pc("fd_seek", 1, 0, 1, probeOut+160), pc("fd_tell", 2, probeOut+160), pc("fd_tell", 4, probeOut+160),
		pc("fd_pread", 0, probeIOVec, 1, 0, probeOut+168), pc("fd_pread", 1, probeIOVec, 1, 0, probeOut+168),
		pc("fd_pwrite", 1, probeIOVec, 1, 0, probeOut+168), pc("fd_pwrite", 0, probeIOVec, 1, 0, probeOut+168),
		pc("fd_read", 1, probeIOVec, 1, probeOut+168), pc("fd_write", 0, probeIOVec, 1, probeOut+168), pc("fd_read", 3, probeIOVec, 1, probeOut+168),
		pc("fd_read", 0, probeIOVec, 1, probeOut+176), pc("fd_write", 2, probeIOVec, 1, probeOut+184),
		pc("fd_advise", 0, 0, 0, 0), pc("fd_allocate", 1, 0, 1), pc("fd_datasync", 1), pc("fd_sync", 2),
		pc("fd_fdstat_set_flags", 0, 4), pc("fd_fdstat_set_rights", 1, 0, 0), pc("fd_filestat_set_size", 2, 0),
		pc("fd_filestat_set_times", 0, 0, 0, 0), pc("fd_readdir", 0, probeOut+200, 64, 0, probeOut+192),
		pc("proc_raise", 9), pc("sched_yield"),
	}, []uint32{0, 0, 0, 8, 0, 8, 70, 70, 70, 8, 70, 8, 70, 8, 8, 8, 8, 0, 0, 8, 8, 8, 8, 8, 8, 8, 8, 8, 58, 0}},
	{"no preopens, no files", probeData(), []wasmtest.ProbeCall{
		pc("fd_prestat_get", 3, probeOut), pc("fd_prestat_get", 0, probeOut), pc("fd_prestat_dir_name", 0, probeOut, 8),
		pc("fd_prestat_dir_name", 3, probeOut, 8),
		pc("path_open", 3, 0, probePath, 8, 0, 0x1ff, 0x1ff, 0, probeOut+8), pc("path_open", 0, 0, probePath, 8, 0, 0x1ff, 0x1ff, 0, probeOut+8),
		pc("path_filestat_get", 3, 0, probePath, 8, probeOut+16), pc("path_create_directory", 1, probePath, 8),
		pc("path_unlink_file", 3, probePath, 8), pc("path_remove_directory", 2, probePath, 8),
		pc("path_rename", 3, probePath, 8, 3, probePath, 4), pc("path_link", 3, 0, probePath, 8, 3, probePath, 4),
		pc("path_symlink", probePath, 8, 3, probePath, 4), pc("path_readlink", 3, probePath, 8, probeOut+100, 64, probeOut+96),
		pc("path_filestat_set_times", 0, 0, probePath, 8, 0, 0, 0),
	}, []uint32{8, 8, 54, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8}},
	{"no sockets", probeData(), []wasmtest.ProbeCall{
		pc("sock_shutdown", 0, 2), pc("sock_shutdown", 1, 2), pc("sock_shutdown", 2, 2), pc("sock_shutdown", 5, 2),
		pc("sock_accept", 0, 0, probeOut), pc("sock_accept", 3, 0, probeOut),
		pc("sock_recv", 1, probeIOVec, 1, 0, probeOut, probeOut+4), pc("sock_send", 2, probeIOVec, 1, 0, probeOut),
	}, []uint32{57, 57, 57, 8, 57, 8, 57, 57}},
	{"close and renumber", probeData(), []wasmtest.ProbeCall{
		pc("fd_renumber", 0, 2), pc("fd_read", 0, probeIOVec, 1, probeOut), pc("fd_read", 2, probeIOVec, 1, probeOut),
		pc("fd_fdstat_get", 2, probeOut+8), pc("fd_write", 2, probeIOVec, 1, probeOut), pc("fd_close", 2), pc("fd_close", 2),
		pc("fd_fdstat_get", 2, probeOut+40), pc("fd_renumber", 0, 5), pc("fd_renumber", 1, 1), pc("fd_close", 7),
	}, []uint32{0, 8, 0, 0, 8, 0, 8, 8, 8, 0, 8}},
	{"poll stdin", probeData(subscription(2, 1, 0, 0, 0)), []wasmtest.ProbeCall{poll(1)}, []uint32{0}},
	{"poll stdout", probeData(subscription(3, 2, 1, 0, 0)), []wasmtest.ProbeCall{poll(1)}, []uint32{0}},
	{"poll stderr", probeData(subscription(4, 2, 2, 0, 0)), []wasmtest.ProbeCall{poll(1)}, []uint32{0}},
	// The clock is a minute away: the reference's clocks are real, and a
	// 1 ms one fired first on a loaded machine before the streams were seen.
	{"poll stdio and a clock", probeData(subscription(1, 0, 1, 60e9, 0), subscription(2, 1, 0, 0, 0),
		subscription(3, 2, 1, 0, 0), subscription(4, 2, 2, 0, 0)), []wasmtest.ProbeCall{poll(4)}, []uint32{0}},
	{"poll clocks", probeData(subscription(1, 0, 1, 2e6, 0), subscription(9, 0, 1, 1e6, 0), subscription(5, 0, 0, 1e6, 0)),
		[]wasmtest.ProbeCall{poll(3)}, []uint32{0}},
	{"poll absolute clock", probeData(subscription(7, 0, 1, 1e6, 1)), []wasmtest.ProbeCall{poll(1)}, []uint32{0}},
	{"poll nothing", probeData(), []wasmtest.ProbeCall{pc("poll_oneoff", probeSubs, probeEvents, 0, probeOut)}, []uint32{28}},
	{"poll closed fd", probeData(subscription(7, 1, 5, 0, 0)), []wasmtest.ProbeCall{poll(1)}, []uint32{8}},
	{"poll read stdout", probeData(subscription(7, 1, 1, 0, 0)), []wasmtest.ProbeCall{poll(1)}, []uint32{8}},
	{"poll write stdin", probeData(subscription(7, 2, 0, 0, 0)), []wasmtest.ProbeCall{poll(1)}, []uint32{8}},
	{"poll CPU clock", probeData(subscription(7, 0, 2, 1e6, 0)), []wasmtest.ProbeCall{poll(1)}, []uint32{28}},
	{"poll bad tag", probeData(subscription(7, 9, 0, 0, 0)), []wasmtest.ProbeCall{poll(1)}, []uint32{28}},
}

// probeStdin is what every probe's stdin holds.
const probeStdin = "hello stdin"

// decodeProbe splits a probe's stdout into errnos and the dumped memory.
func decodeProbe(t *testing.T, p wasiProbe, out []byte) ([]uint32, []byte) {
	t.Helper()
	if len(out) < 4*len(p.calls)+wasmtest.ProbeDumpLen {
		t.Fatalf("%s: stdout is %d bytes: %q", p.name, len(out), out)
	}
	out = out[len(out)-4*len(p.calls)-wasmtest.ProbeDumpLen:] // after what the calls wrote
	errnos := make([]uint32, len(p.calls))
	for i := range errnos {
		errnos[i] = binary.LittleEndian.Uint32(out[4*i:])
	}
	return errnos, out[4*len(p.calls):]
}

// Acceptance: every engine answers every probe as the reference does, and
// with the same bytes: poll_oneoff on stdin, stdout, stderr and clocks,
// sock_* on non-socket fds, path_open and fd_prestat_get with no preopens.
func TestWASI_EveryEngineGivesTheReferenceAnswers(t *testing.T) {
	for _, p := range wasiProbes {
		mod := put(t, wasmtest.WASIProbe(p.data, p.calls))
		t.Run(p.name, func(t *testing.T) {
			var want []byte
			var first string
			for _, r := range runners(t) {
				res, err := r.run(testCtx(t), &Request{ModuleHash: mod, Stdin: []byte(probeStdin)})
				if err != nil {
					t.Fatalf("%s: %v", r.name, err)
				}
				errnos, _ := decodeProbe(t, p, res.Stdout)
				if fmt.Sprint(errnos) != fmt.Sprint(p.errnos) {
					t.Errorf("%s: errnos %v\nwant            %v\n(calls %v)", r.name, errnos, p.errnos, p.calls)
				}
				if want == nil {
					want, first = res.Stdout, r.name
				} else if !bytes.Equal(res.Stdout, want) {
					t.Errorf("%s wrote other bytes than %s:\n%x\n%x", r.name, first, res.Stdout, want)
				}
			}
		})
	}
}

// What the answers mean, read back from memory (on wazero: the engines
// give the same bytes, checked above).
func TestWASI_PollAndFdstatAnswers(t *testing.T) {
	eng := sharedEngineNamed(t, EngineWazero)
	run := func(name string) ([]uint32, []byte) {
		for _, p := range wasiProbes {
			if p.name == name {
				res, err := eng.Run(testCtx(t), &Request{ModuleHash: put(t, wasmtest.WASIProbe(p.data, p.calls)), Stdin: []byte(probeStdin)})
				if err != nil {
					t.Fatal(err)
				}
				return decodeProbe(t, p, res.Stdout)
			}
		}
		t.Fatalf("no probe %q", name)
		return nil, nil
	}
	_, dump := run("stdio streams")
	u64 := func(off int) uint64 { return binary.LittleEndian.Uint64(dump[off:]) }
	if u64(8) != rightFdRead || u64(24+8) != rightFdWrite || u64(48+8) != rightFdWrite || dump[0] != 0 {
		t.Errorf("fdstat of stdio: % x", dump[:72])
	}
	if n := binary.LittleEndian.Uint32(dump[176:]); n != uint32(len(probeStdin)) {
		t.Errorf("fd_read of stdin read %d bytes, want %d", n, len(probeStdin))
	}
	events := func(name string) (n uint32, userdata []uint64, types []byte) {
		_, dump := run(name)
		n = binary.LittleEndian.Uint32(dump[1016:])
		for i := range n {
			ev := dump[1024+32*i:]
			userdata = append(userdata, binary.LittleEndian.Uint64(ev))
			types = append(types, ev[10])
		}
		return
	}
	for _, tc := range []struct {
		probe    string
		userdata string
	}{
		{"poll stdin", "[2]"}, {"poll stdout", "[3]"}, {"poll stderr", "[4]"},
		{"poll stdio and a clock", "[2 3 4]"}, // streams are ready: the clock has not fired
		{"poll clocks", "[9 5]"},              // the earliest deadline, and the clocks due by then
		{"poll absolute clock", "[7]"},
	} {
		if _, ud, _ := events(tc.probe); fmt.Sprint(ud) != tc.userdata {
			t.Errorf("%s: events for userdata %v, want %s", tc.probe, ud, tc.userdata)
		}
	}
}

// The table offers all of WASI preview 1, each function with its witx
// signature (wasmtest's list), and wazero's WASI has no function it lacks.
func TestWASI_TableIsAllOfPreview1(t *testing.T) {
	if len(wasiFuncs) != len(wasmtest.WASISignatures) {
		t.Errorf("table has %d functions, preview 1 has %d", len(wasiFuncs), len(wasmtest.WASISignatures))
	}
	for _, f := range wasiFuncs {
		sig, ok := wasmtest.WASISignatures[f.name]
		if !ok {
			t.Errorf("%s is not a WASI preview 1 function", f.name)
			continue
		}
		var params []wasmtest.ValType
		for _, p := range f.params {
			params = append(params, map[wasiType]wasmtest.ValType{wasiI32: wasmtest.I32, wasiI64: wasmtest.I64}[p])
		}
		if fmt.Sprint(params) != fmt.Sprint(sig[0]) || f.noResult != (len(sig[1]) == 0) {
			t.Errorf("%s: params %v (no result %v), want %v -> %v", f.name, params, f.noResult, sig[0], sig[1])
		}
	}
	ctx := testCtx(t)
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		t.Fatal(err)
	}
	for name := range rt.Module(wasiModuleName).ExportedFunctionDefinitions() {
		if !wasiFunctionNames[name] {
			t.Errorf("wazero's WASI has %s, ours does not", name)
		}
	}
}
