package wasmtest

import (
	"encoding/binary"
	"maps"
	"slices"
)

// WASISignatures is every function of WASI preview 1 with its signature
// (params, results), as the witx of wasi_snapshot_preview1 declares them.
var WASISignatures = map[string][2][]ValType{}

func init() {
	i, l := I32, I64
	sig := func(name string, params ...ValType) {
		WASISignatures[name] = [2][]ValType{params, {I32}}
		wasiSignatures[name] = funcType{params, []ValType{I32}}
	}
	sig("args_get", i, i)
	sig("args_sizes_get", i, i)
	sig("environ_get", i, i)
	sig("environ_sizes_get", i, i)
	sig("clock_res_get", i, i)
	sig("clock_time_get", i, l, i)
	sig("fd_advise", i, l, l, i)
	sig("fd_allocate", i, l, l)
	sig("fd_close", i)
	sig("fd_datasync", i)
	sig("fd_fdstat_get", i, i)
	sig("fd_fdstat_set_flags", i, i)
	sig("fd_fdstat_set_rights", i, l, l)
	sig("fd_filestat_get", i, i)
	sig("fd_filestat_set_size", i, l)
	sig("fd_filestat_set_times", i, l, l, i)
	sig("fd_pread", i, i, i, l, i)
	sig("fd_prestat_get", i, i)
	sig("fd_prestat_dir_name", i, i, i)
	sig("fd_pwrite", i, i, i, l, i)
	sig("fd_read", i, i, i, i)
	sig("fd_readdir", i, i, i, l, i)
	sig("fd_renumber", i, i)
	sig("fd_seek", i, l, i, i)
	sig("fd_sync", i)
	sig("fd_tell", i, i)
	sig("fd_write", i, i, i, i)
	sig("path_create_directory", i, i, i)
	sig("path_filestat_get", i, i, i, i, i)
	sig("path_filestat_set_times", i, i, i, i, l, l, i)
	sig("path_link", i, i, i, i, i, i, i)
	sig("path_open", i, i, i, i, i, l, l, i, i)
	sig("path_readlink", i, i, i, i, i, i)
	sig("path_remove_directory", i, i, i)
	sig("path_rename", i, i, i, i, i, i)
	sig("path_symlink", i, i, i, i, i)
	sig("path_unlink_file", i, i, i)
	sig("poll_oneoff", i, i, i, i)
	sig("proc_raise", i)
	sig("sched_yield")
	sig("random_get", i, i)
	sig("sock_accept", i, i, i)
	sig("sock_recv", i, i, i, i, i, i)
	sig("sock_send", i, i, i, i, i)
	sig("sock_shutdown", i, i)
	WASISignatures["proc_exit"] = [2][]ValType{{I32}, nil}
}

// ProbeCall is one WASI call a probe module makes, with constant arguments
// (each converted to the parameter's type).
type ProbeCall struct {
	Name string
	Args []int64
}

// Probe layout: the caller's data and out-pointers live below ProbeDump +
// ProbeDumpLen; the probe keeps its own state above.
const (
	ProbeDump    = 1024 // start of the region written to stdout after the errnos
	ProbeDumpLen = 4096 // its length
	probeIOVec   = 48 << 10
)

// WASIProbe is a command that places data (offset -> bytes) in its one page
// of memory, makes each call in order, then writes to stdout (fd 1) each
// call's errno as a little-endian u32 followed by the ProbeDumpLen bytes at
// ProbeDump (where the calls' outputs are pointed). It lets a test see
// exactly what a WASI implementation answers, on any engine.
func WASIProbe(data map[uint32][]byte, calls []ProbeCall) []byte {
	m := NewModule()
	idx := map[string]uint32{}
	for _, c := range append([]ProbeCall{{Name: "fd_write"}}, calls...) {
		if _, ok := idx[c.Name]; !ok {
			idx[c.Name] = m.ImportWASI(c.Name)
		}
	}
	m.Memory(1, NoMax)
	offs := slices.Sorted(maps.Keys(data)) // the same bytes on every build
	for _, off := range offs {
		m.Data(off, data[off])
	}
	if len(calls) > ProbeDump/4 {
		panic("wasmtest: too many probe calls")
	}
	errnos := uint32(ProbeDump - 4*len(calls)) // just below the dump: one write sends both
	body := Code{}
	for n, c := range calls {
		sig := wasiSignatures[c.Name]
		body = body.I32Const(int32(errnos) + int32(4*n))
		for k, t := range sig.params {
			var v int64
			if k < len(c.Args) {
				v = c.Args[k]
			}
			if t == I64 {
				body = body.I64Const(v)
			} else {
				body = body.I32Const(int32(v))
			}
		}
		body = body.Call(idx[c.Name]).I32Store(0)
	}
	iov := make([]byte, 8)
	binary.LittleEndian.PutUint32(iov[0:], errnos)
	binary.LittleEndian.PutUint32(iov[4:], uint32(4*len(calls))+ProbeDumpLen)
	m.Data(probeIOVec, iov)
	body = body.I32Const(1).I32Const(probeIOVec).I32Const(1).I32Const(probeIOVec + 8).Call(idx["fd_write"]).Drop()
	m.Export("_start", m.Func(nil, nil, nil, body))
	return m.Bytes()
}
