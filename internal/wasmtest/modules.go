package wasmtest

import "encoding/binary"

// Ready-made WASI command modules (they export _start and memory).
//
// They share one memory layout:
//
//	0     iovec {buf, len} for fd_write and fd_read
//	8     count written or read
//	16    argc / environ count, 20: their buffer size
//	100   clock and random output (32 bytes)
//	1024  static data (text)
//	4096  argv / environ pointer array
//	8192  argv / environ strings, and the cat buffer
const (
	addrIOVec   = 0
	addrCount   = 8
	addrSizes   = 16
	addrClock   = 100
	addrStatic  = 1024
	addrPtrs    = 4096
	addrBuf     = 8192
	catBufBytes = 32 << 10
	memoryPages = 2
)

// wasiModule is a Module with WASI imports and a write(fd, ptr, len)
// helper function already declared.
type wasiModule struct {
	*Module
	wasi  map[string]uint32
	write uint32
}

func newWASIModule(imports ...string) *wasiModule {
	m := &wasiModule{Module: NewModule(), wasi: map[string]uint32{}}
	for _, name := range append([]string{"fd_write"}, imports...) {
		if _, ok := m.wasi[name]; !ok {
			m.wasi[name] = m.ImportWASI(name)
		}
	}
	m.Memory(memoryPages, NoMax)
	m.write = m.Func([]ValType{I32, I32, I32}, nil, nil, Code{}.
		I32Const(addrIOVec).LocalGet(1).I32Store(0).
		I32Const(addrIOVec).LocalGet(2).I32Store(4).
		LocalGet(0).I32Const(addrIOVec).I32Const(1).I32Const(addrCount).
		Call(m.wasi["fd_write"]).Drop())
	return m
}

// writeStatic returns code that writes len bytes at ptr to fd.
func (m *wasiModule) writeStatic(fd, ptr, n int32) Code {
	return Code{}.I32Const(fd).I32Const(ptr).I32Const(n).Call(m.write)
}

// command exports a _start function with the given locals and body and
// returns the encoded module.
func (m *wasiModule) command(locals []ValType, body Code) []byte {
	m.Export("_start", m.Func(nil, nil, locals, body))
	return m.Bytes()
}

// LoopForever spins in a tight loop that never calls the host.
func LoopForever() []byte {
	return newWASIModule().command(nil, Code{}.Loop().Br(0).End())
}

// Trap executes unreachable.
func Trap() []byte {
	return newWASIModule().command(nil, Code{}.Unreachable())
}

// OutOfBounds loads from an address past the end of its memory (a trap the
// engine catches as a fault: SIGSEGV under compiled code).
func OutOfBounds() []byte {
	return newWASIModule().command(nil, Code{}.I32Const(-16).I32Load(0).Drop())
}

// DivideByZero divides an integer by zero (SIGFPE under compiled code).
func DivideByZero() []byte {
	m := newWASIModule()
	return m.command([]ValType{I32}, Code{}.I32Const(7).LocalGet(0).I32DivU().Drop())
}

// Exit calls proc_exit(code).
func Exit(code uint32) []byte {
	m := newWASIModule("proc_exit")
	return m.command(nil, Code{}.I32Const(int32(code)).Call(m.wasi["proc_exit"]))
}

// Hello writes stdout to fd 1 and stderr to fd 2, then returns from _start
// (exit code 0) or, if code is not 0, calls proc_exit(code).
func Hello(stdout, stderr string, code uint32) []byte {
	m := newWASIModule("proc_exit")
	m.Data(addrStatic, []byte(stdout+stderr))
	body := m.writeStatic(1, addrStatic, int32(len(stdout)))
	body = append(body, m.writeStatic(2, addrStatic+int32(len(stdout)), int32(len(stderr)))...)
	if code != 0 {
		body = body.I32Const(int32(code)).Call(m.wasi["proc_exit"])
	}
	return m.command(nil, body)
}

// MemoryBomb grows memory 16 pages (1 MiB) at a time, writing a byte into
// each new chunk so the pages are really used, until memory.grow fails; then
// it executes unreachable.
func MemoryBomb() []byte {
	m := newWASIModule()
	return m.command([]ValType{I32}, Code{}.
		Loop().
		I32Const(16).MemoryGrow().LocalTee(0).
		I32Const(-1).I32Eq().If().Unreachable().End().
		LocalGet(0).I32Const(16).I32Shl(). // first byte of the new chunk
		I32Const(7).I32Store8(0).
		Br(0).
		End())
}

// HugeInitialMemory declares a memory of minPages at start, so it fails
// before running if the limit is below minPages*64 KiB.
func HugeInitialMemory(minPages uint32) []byte {
	m := NewModule()
	m.Memory(minPages, NoMax)
	m.Export("_start", m.Func(nil, nil, nil, nil))
	return m.Bytes()
}

// OutputFlood writes 4 KiB to fd (1 or 2) in a loop forever.
func OutputFlood(fd int32) []byte {
	m := newWASIModule()
	chunk := make([]byte, 4096)
	for i := range chunk {
		chunk[i] = 'x'
	}
	m.Data(addrStatic, chunk)
	return m.command(nil, Code{}.Loop().
		I32Const(fd).I32Const(addrStatic).I32Const(4096).Call(m.write).
		Br(0).End())
}

// EchoArgs writes argv[1:] joined by spaces, then a newline, to stdout.
func EchoArgs() []byte {
	m := newWASIModule("args_sizes_get", "args_get")
	m.Data(addrStatic, []byte("\n"))
	return m.command([]ValType{I32, I32, I32}, m.stringsBody(
		"args_sizes_get", "args_get", ' ', true))
}

// EchoEnv writes each environment entry KEY=VALUE on its own line to stdout.
func EchoEnv() []byte {
	m := newWASIModule("environ_sizes_get", "environ_get")
	return m.command([]ValType{I32, I32, I32}, m.stringsBody(
		"environ_sizes_get", "environ_get", '\n', false))
}

// stringsBody fetches argv or environ and writes the NUL-terminated strings
// with each NUL replaced by sep. With skipFirst it starts at the second
// string (argv[1]), drops the final NUL and writes a newline after.
// Locals: 0 start, 1 end, 2 cursor.
func (m *wasiModule) stringsBody(sizesGet, get string, sep byte, skipFirst bool) Code {
	c := Code{}.
		I32Const(addrSizes).I32Const(addrSizes + 4).Call(m.wasi[sizesGet]).Drop().
		I32Const(addrPtrs).I32Const(addrBuf).Call(m.wasi[get]).Drop().
		// end = addrBuf + bufsize
		I32Const(addrBuf).I32Const(0).I32Load(addrSizes + 4).I32Add().LocalSet(1)
	if skipFirst {
		c = c.I32Const(0).I32Load(addrSizes).I32Const(2).I32LtU().If().
			I32Const(1).I32Const(addrStatic).I32Const(1).Call(m.write).Return().End().
			I32Const(0).I32Load(addrPtrs + 4).LocalSet(0).
			LocalGet(1).I32Const(1).I32Sub().LocalSet(1) // drop the last NUL
	} else {
		c = c.I32Const(addrBuf).LocalSet(0)
	}
	c = c.LocalGet(0).LocalSet(2).
		Block().Loop().
		LocalGet(2).LocalGet(1).I32GeU().BrIf(1).
		LocalGet(2).I32Load8U(0).I32Eqz().If().
		LocalGet(2).I32Const(int32(sep)).I32Store8(0).End().
		LocalGet(2).I32Const(1).I32Add().LocalSet(2).
		Br(0).
		End().End().
		I32Const(1).LocalGet(0).LocalGet(1).LocalGet(0).I32Sub().Call(m.write)
	if skipFirst {
		c = append(c, m.writeStatic(1, addrStatic, 1)...)
	}
	return c
}

// Cat copies stdin to stdout until end of input.
func Cat() []byte {
	m := newWASIModule("fd_read")
	return m.command([]ValType{I32}, Code{}.
		Block().Loop().
		I32Const(addrIOVec).I32Const(addrBuf).I32Store(0).
		I32Const(addrIOVec).I32Const(catBufBytes).I32Store(4).
		I32Const(0).I32Const(addrIOVec).I32Const(1).I32Const(addrCount).
		Call(m.wasi["fd_read"]).BrIf(1). // errno != 0: stop
		I32Const(0).I32Load(addrCount).LocalTee(0).I32Eqz().BrIf(1).
		I32Const(1).I32Const(addrBuf).LocalGet(0).Call(m.write).
		Br(0).
		End().End())
}

// CountStdin reads stdin to its end and writes how many bytes it read, as
// a u32 little endian (modulo 2^32).
func CountStdin() []byte {
	m := newWASIModule("fd_read")
	// Local 0: the bytes one fd_read read; 1: the total.
	body := Code{}.
		Block().Loop().
		I32Const(addrIOVec).I32Const(addrBuf).I32Store(0).
		I32Const(addrIOVec).I32Const(catBufBytes).I32Store(4).
		I32Const(0).I32Const(addrIOVec).I32Const(1).I32Const(addrCount).
		Call(m.wasi["fd_read"]).BrIf(1). // errno != 0: stop
		I32Const(0).I32Load(addrCount).LocalTee(0).I32Eqz().BrIf(1).
		LocalGet(1).LocalGet(0).I32Add().LocalSet(1).
		Br(0).
		End().End().
		I32Const(addrCount).LocalGet(1).I32Store(0)
	return m.command([]ValType{I32, I32}, append(body, m.writeStatic(1, addrCount, 4)...))
}

// ClockRandom writes 32 raw bytes to stdout: the realtime clock (u64 ns,
// little endian), the monotonic clock (u64 ns), then 16 bytes of random_get.
func ClockRandom() []byte {
	m := newWASIModule("clock_time_get", "random_get")
	return m.command(nil, Code{}.
		I32Const(0).I64Const(1).I32Const(addrClock).Call(m.wasi["clock_time_get"]).Drop().
		I32Const(1).I64Const(1).I32Const(addrClock+8).Call(m.wasi["clock_time_get"]).Drop().
		I32Const(addrClock+16).I32Const(16).Call(m.wasi["random_get"]).Drop().
		I32Const(1).I32Const(addrClock).I32Const(32).Call(m.write))
}

// NotWasm is a file that is not a WebAssembly module at all.
func NotWasm() []byte { return []byte("#!/bin/sh\necho hello\n") }

// GarbageAfterMagic has the WebAssembly magic and version, then bytes that
// do not decode.
func GarbageAfterMagic() []byte {
	return append([]byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}, "garbage!"...)
}

// GrowMemory grows memory by pages (from its 2 initial pages), writes the
// last byte of the grown memory, writes "ok" to stdout and returns. If the
// grow fails it executes unreachable. With a limit of exactly 2+pages pages
// it succeeds; with one page less it fails.
func GrowMemory(pages uint32) []byte {
	m := newWASIModule()
	m.Data(addrStatic, []byte("ok"))
	body := Code{}.
		I32Const(int32(pages)).MemoryGrow().I32Const(-1).I32Eq().If().Unreachable().End().
		MemorySize().I32Const(16).I32Shl().I32Const(1).I32Sub(). // last byte
		I32Const(1).I32Store8(0)
	return m.command(nil, append(body, m.writeStatic(1, addrStatic, 2)...))
}

// MemoryPages is the initial memory of the ready modules, in 64 KiB pages.
const MemoryPages = memoryPages

// WriteThenLoop writes stdout and stderr, then spins forever.
func WriteThenLoop(stdout, stderr string) []byte {
	m := newWASIModule()
	m.Data(addrStatic, []byte(stdout+stderr))
	body := m.writeStatic(1, addrStatic, int32(len(stdout)))
	body = append(body, m.writeStatic(2, addrStatic+int32(len(stdout)), int32(len(stderr)))...)
	return m.command(nil, body.Loop().Br(0).End())
}

// ImportsUnknown imports env.missing, which no WASI host provides.
func ImportsUnknown() []byte {
	m := NewModule()
	f := m.Import("env", "missing", nil, nil)
	m.Memory(1, NoMax)
	m.Export("_start", m.Func(nil, nil, nil, Code{}.Call(f)))
	return m.Bytes()
}

// NoStart is a valid module that exports no _start (a library, not a
// command).
func NoStart() []byte {
	m := NewModule()
	m.Memory(1, NoMax)
	m.Export("run", m.Func(nil, nil, nil, nil))
	return m.Bytes()
}

// SpinThenHello counts down from iterations in a tight loop (about a
// nanosecond each when compiled), then writes stdout: a task that computes
// for a while and then gives a known result.
func SpinThenHello(iterations uint32, stdout string) []byte {
	m := newWASIModule()
	m.Data(addrStatic, []byte(stdout))
	body := Code{}.I32Const(int32(iterations)).LocalSet(0).
		Loop().LocalGet(0).I32Const(1).I32Sub().LocalTee(0).BrIf(0).End()
	return m.command([]ValType{I32}, append(body, m.writeStatic(1, addrStatic, int32(len(stdout)))...))
}

// ResidueText is Residue's data segment: what it prints is a slice of it.
const ResidueText = "clean\ndirty\n"

// Residue checks that it starts from a fresh memory: it grows memory by
// growPages, then reads every byte of it, all zero but its data segment
// (ResidueText at 1024), and writes "clean\n" if so, else "dirty\n". Then
// it fills all of its memory with 0xff, so a later task given the same
// memory without a reset, or with part of one, prints "dirty\n" (or, its
// data overwritten, neither line).
func Residue(growPages uint32) []byte {
	m := newWASIModule()
	m.Data(addrStatic, []byte(ResidueText))
	const addr, end, acc = 0, 1, 2 // locals
	var text [12]byte
	copy(text[:], ResidueText)
	word := func(i int) int32 { return int32(binary.LittleEndian.Uint32(text[4*i:])) }
	body := Code{}.
		I32Const(int32(growPages)).MemoryGrow().I32Const(-1).I32Eq().If().Unreachable().End().
		MemorySize().I32Const(16).I32Shl().LocalSet(end).
		// acc |= every word outside the data segment
		Block().Loop().
		LocalGet(addr).LocalGet(end).I32GeU().BrIf(1).
		LocalGet(addr).I32Const(addrStatic).I32Sub().I32Const(int32(len(text))).I32GeU().
		If().LocalGet(acc).LocalGet(addr).I32Load(0).I32Or().LocalSet(acc).End().
		LocalGet(addr).I32Const(4).I32Add().LocalSet(addr).
		Br(0).End().End()
	for i := range len(text) / 4 { // acc |= (data word != its original)
		body = body.LocalGet(acc).I32Const(addrStatic + 4*int32(i)).I32Load(0).I32Const(word(i)).I32Ne().I32Or().LocalSet(acc)
	}
	body = body.LocalGet(acc).I32Eqz().If()
	body = append(body, m.writeStatic(1, addrStatic, 6)...)
	body = body.Else()
	body = append(body, m.writeStatic(1, addrStatic+6, 6)...)
	body = body.End().
		// fill memory with 0xff
		I32Const(0).LocalSet(addr).
		Block().Loop().
		LocalGet(addr).LocalGet(end).I32GeU().BrIf(1).
		LocalGet(addr).I32Const(-1).I32Store(0).
		LocalGet(addr).I32Const(4).I32Add().LocalSet(addr).
		Br(0).End().End()
	return m.command([]ValType{I32, I32, I32}, body)
}

// TableResidue checks that it starts from its module's table: entry 0 its
// function that returns 1, entry 1 null. It writes "clean\n" if so, else
// "dirty\n", then sets both entries to a function that returns 2, so a
// later task given the same table without a reset prints "dirty\n".
func TableResidue() []byte {
	m := newWASIModule()
	m.Data(addrStatic, []byte(ResidueText))
	one := m.Func(nil, []ValType{I32}, nil, Code{}.I32Const(1))
	two := m.Func(nil, []ValType{I32}, nil, Code{}.I32Const(2))
	m.Table(2, []uint32{one})
	m.Declare(two)
	body := Code{}.
		I32Const(0).CallIndirect(m.FuncType(nil, []ValType{I32})).I32Const(1).I32Ne().
		I32Const(1).TableGet().RefIsNull().I32Eqz().I32Or().
		If()
	body = append(body, m.writeStatic(1, addrStatic+6, 6)...)
	body = body.Else()
	body = append(body, m.writeStatic(1, addrStatic, 6)...)
	body = body.End().
		I32Const(0).RefFunc(two).TableSet().
		I32Const(1).RefFunc(two).TableSet()
	return m.command(nil, body)
}

// ReadPastMemoryText is what ReadPastMemory writes: "grew\n" once grown,
// the rest if a load past its memory's end did not trap.
const ReadPastMemoryText = "grew\nread past memory.size\n"

// ReadPastMemory checks that memory past memory.size is out of reach,
// including memory an earlier task of the same module grew into (an engine
// that keeps grown pages mapped between tasks must still trap there). Run
// with an argument, it grows its memory by growPages (at least 2), writes
// into the last new byte, writes "grew\n", then loads the 4 bytes just past
// its memory's end. Run with none, it loads from the middle of what such a
// run grew, past its own end (MemoryPages). Both loads must trap; one that
// does not writes "read past memory.size\n".
func ReadPastMemory(growPages uint32) []byte {
	m := newWASIModule("args_sizes_get")
	m.Data(addrStatic, []byte(ReadPastMemoryText))
	memEnd := Code{}.MemorySize().I32Const(16).I32Shl()
	body := Code{}.
		I32Const(addrSizes).I32Const(addrSizes + 4).Call(m.wasi["args_sizes_get"]).Drop().
		I32Const(1).I32Const(addrSizes).I32Load(0).I32LtU().If(). // argc > 1: grow
		I32Const(int32(growPages)).MemoryGrow().I32Const(-1).I32Eq().If().Unreachable().End()
	body = append(body, memEnd...)
	body = body.I32Const(1).I32Sub().I32Const(7).I32Store8(0)
	body = append(body, m.writeStatic(1, addrStatic, 5)...)
	body = append(body, memEnd...)
	body = body.I32Load(0).Drop().
		Else().
		I32Const(int32(memoryPages+growPages/2) << 16).I32Load(0).Drop().
		End()
	body = append(body, m.writeStatic(1, addrStatic+5, int32(len(ReadPastMemoryText)-5))...)
	return m.command(nil, body)
}
