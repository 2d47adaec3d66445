package wasm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Rewriting a module for an engine that has no memory limit in its API and
// cannot stop a module from a host function (wasmer: a host function that
// returns an error makes wasmer-go free the trap twice). The engine runs the
// rewritten module instead:
//
//   - the declared maximum of its memory is lowered to the limit, so
//     memory.grow past the limit fails (returns -1) in the engine itself,
//     just as wazero's limited allocator makes it fail;
//   - every memory.grow goes through an added function that, when the grow
//     fails, sets an added exported global, so the engine can tell after the
//     run that the module asked for more than its limit (KindMemory), as
//     wazero's allocator tells it;
//   - every call of proc_exit is followed by unreachable, and every call of
//     another imported (WASI) function by a check of an added exported
//     "stop" global that the host sets when the module must stop (the
//     output cap, an argument the reference WASI traps on): the module
//     stops at once, as it does under wazero, where the host function
//     panics.
//
// The additions come after every existing function and global, so no index
// the module already uses moves.

// Globals the rewritten module exports.
const (
	growFailedExport = "peergrid:grow_failed" // 1 once a memory.grow failed
	stopExport       = "peergrid:stop"        // set to 1 by the host to stop the module
)

var errRewrite = errors.New("cannot rewrite module")

// Section ids.
const (
	secCustom   = 0
	secType     = 1
	secImport   = 2
	secFunction = 3
	secMemory   = 5
	secGlobal   = 6
	secExport   = 7
	secCode     = 10
)

// sectionOrder is where each known section goes; custom sections stay where
// they are.
var sectionOrder = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: 8, 9: 9, 12: 10, 10: 11, 11: 12}

type section struct {
	id   byte
	body []byte
}

// capModuleMemory returns the module rewritten as described above.
func capModuleMemory(data []byte, maxPages uint32) ([]byte, error) {
	return rewriteModule(data, maxPages, true)
}

// hookModuleGrow returns the module with only the grow hook and its
// globals added: no limit is written into it and host calls are not
// followed by checks. It is for an engine that enforces the cap itself
// (wasmtime's store limiter) and stops the module from a host call, but
// cannot say afterwards whether a grow was refused: the hook's global does.
// The result does not depend on the limit, so it is compiled once.
func hookModuleGrow(data []byte) ([]byte, error) {
	return rewriteModule(data, noCap, false)
}

// noCap as maxPages leaves every memory's maximum as it is.
const noCap = ^uint32(0)

func rewriteModule(data []byte, maxPages uint32, stopChecks bool) ([]byte, error) {
	secs, err := splitSections(data)
	if err != nil {
		return nil, err
	}
	for i, s := range secs {
		if s.id == secMemory && maxPages != noCap {
			body, err := capMemorySection(s.body, maxPages)
			if err != nil {
				return nil, err
			}
			secs[i].body = body
		}
	}
	if secs, err = instrument(secs, stopChecks); err != nil {
		return nil, err
	}
	return joinSections(secs), nil
}

func splitSections(data []byte) ([]section, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("%w: too short", errRewrite)
	}
	var secs []section
	p := data[8:]
	for len(p) > 0 {
		id := p[0]
		size, n := binary.Uvarint(p[1:])
		if n <= 0 || size > uint64(len(p)-1-n) {
			return nil, fmt.Errorf("%w: bad section header", errRewrite)
		}
		secs = append(secs, section{id, p[1+n : 1+n+int(size)]})
		p = p[1+n+int(size):]
	}
	return secs, nil
}

func joinSections(secs []section) []byte {
	out := []byte{0x00, 'a', 's', 'm', 1, 0, 0, 0}
	for _, s := range secs {
		out = append(out, s.id)
		out = binary.AppendUvarint(out, uint64(len(s.body)))
		out = append(out, s.body...)
	}
	return out
}

// capMemorySection sets every memory's maximum to min(its maximum,
// maxPages). A minimum over maxPages is left for the caller's check.
func capMemorySection(body []byte, maxPages uint32) ([]byte, error) {
	r := &reader{b: body}
	count := r.u32()
	out := binary.AppendUvarint(nil, uint64(count))
	for range count {
		flags := r.byte()
		if flags > 1 {
			return nil, fmt.Errorf("%w: memory flags %#x (shared or 64-bit memory)", errRewrite, flags)
		}
		lo := r.u32()
		hi := maxPages
		if flags == 1 {
			hi = min(r.u32(), maxPages)
		}
		hi = max(hi, lo) // an initial memory over the limit fails before this matters
		out = append(out, 1)
		out = binary.AppendUvarint(out, uint64(lo))
		out = binary.AppendUvarint(out, uint64(hi))
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, fmt.Errorf("%w: bad memory section", errRewrite)
	}
	return out, nil
}

// rewriteIndices are the indices the code rewrite needs.
type rewriteIndices struct {
	hook       uint32 // the grow hook
	growFailed uint32 // global
	stop       uint32 // global
	procExit   uint32 // imported function, or noFunc
	imports    uint32 // imported functions: indices below are host calls
}

const noFunc = ^uint32(0)

// instrument adds the globals, their exports and the grow hook, and
// rewrites the code (see the top of this file).
func instrument(secs []section, stopChecks bool) ([]section, error) {
	var nTypes, nImportGlobals, nFuncs, nGlobals uint32
	var imp importInfo
	for _, s := range secs {
		var err error
		switch s.id {
		case secType:
			nTypes, err = vecCount(s.body)
		case secImport:
			imp, err = readImports(s.body)
			nImportGlobals = imp.globals
		case secFunction:
			nFuncs, err = vecCount(s.body)
		case secGlobal:
			nGlobals, err = vecCount(s.body)
		}
		if err != nil {
			return nil, err
		}
	}
	ix := rewriteIndices{
		hook: imp.funcs + nFuncs, growFailed: nImportGlobals + nGlobals, stop: nImportGlobals + nGlobals + 1,
		procExit: imp.procExit, imports: imp.funcs,
	}
	if !stopChecks {
		ix.procExit, ix.imports = noFunc, 0
	}
	out := append([]section(nil), secs...)
	grows := 0
	for i, s := range out {
		if s.id == secCode {
			code, g, err := rewriteCode(s.body, ix)
			if err != nil {
				return nil, err
			}
			out[i].body, grows = code, g
		}
	}
	if grows > 0 { // the hook: (i32) -> i32
		out = appendToVec(out, secType, []byte{0x60, 1, 0x7f, 1, 0x7f})
		out = appendToVec(out, secFunction, binary.AppendUvarint(nil, uint64(nTypes)))
		hb := growHookBody(ix.growFailed)
		out = appendToVec(out, secCode, append(binary.AppendUvarint(nil, uint64(len(hb))), hb...))
	}
	for _, g := range []struct {
		name string
		idx  uint32
	}{{growFailedExport, ix.growFailed}, {stopExport, ix.stop}} {
		out = appendToVec(out, secGlobal, []byte{0x7f, 1, 0x41, 0, 0x0b}) // mutable i32 = 0
		exp := binary.AppendUvarint(nil, uint64(len(g.name)))
		exp = append(exp, g.name...)
		exp = append(exp, 0x03) // global
		exp = binary.AppendUvarint(exp, uint64(g.idx))
		out = appendToVec(out, secExport, exp)
	}
	return out, nil
}

// growHookBody is the hook: grow, and on failure set the global.
func growHookBody(global uint32) []byte {
	body := []byte{1, 1, 0x7f} // one local i32
	body = append(body, 0x20, 0, 0x40, 0, 0x22, 1, 0x41, 0x7f, 0x46, 0x04, 0x40, 0x41, 1, 0x24)
	body = binary.AppendUvarint(body, uint64(global))
	body = append(body, 0x0b, 0x20, 1, 0x0b)
	return body
}

// appendToVec appends one entry to the vector in the section with id,
// creating the section in its place if the module has none.
func appendToVec(secs []section, id byte, entry []byte) []section {
	for i, s := range secs {
		if s.id == id {
			n, _ := vecCount(s.body)
			_, w := binary.Uvarint(s.body)
			body := binary.AppendUvarint(nil, uint64(n)+1)
			body = append(body, s.body[w:]...)
			secs[i].body = append(body, entry...)
			return secs
		}
	}
	body := append([]byte{1}, entry...)
	at := len(secs)
	for i, s := range secs {
		if s.id != secCustom && sectionOrder[s.id] > sectionOrder[id] {
			at = i
			break
		}
	}
	return append(secs[:at], append([]section{{id, body}}, secs[at:]...)...)
}

func leb32(b []byte) uint32 {
	v, _ := binary.Uvarint(b)
	return uint32(v)
}

func vecCount(body []byte) (uint32, error) {
	r := &reader{b: body}
	n := r.u32()
	return n, r.err
}

type importInfo struct {
	funcs, globals uint32
	procExit       uint32 // function index, or noFunc
	sharedMemory   bool   // a memory import is shared (threads)
}

// limitsShared is the limits flag of a shared memory (the threads proposal).
const limitsShared = 0x02

func readImports(body []byte) (importInfo, error) {
	info := importInfo{procExit: noFunc}
	r := &reader{b: body}
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		mod := string(r.take(int(r.u32())))
		name := string(r.take(int(r.u32())))
		switch r.byte() {
		case 0:
			if mod == wasiModuleName && name == "proc_exit" {
				info.procExit = info.funcs
			}
			info.funcs++
			r.u32()
		case 1: // table: reftype, limits
			r.byte()
			r.limits()
		case 2:
			if len(r.b) > 0 && r.b[0]&limitsShared != 0 {
				info.sharedMemory = true
			}
			r.limits()
		case 3:
			info.globals++
			r.byte()
			r.byte()
		default:
			r.fail()
		}
	}
	return info, r.err
}

// rewriteCode rewrites every function body in the code section.
func rewriteCode(body []byte, ix rewriteIndices) ([]byte, int, error) {
	r := &reader{b: body}
	n := r.u32()
	out := binary.AppendUvarint(nil, uint64(n))
	grows := 0
	for range n {
		size := r.u32()
		fn := r.take(int(size))
		if r.err != nil {
			return nil, 0, r.err
		}
		nfn, g, err := rewriteFunc(fn, ix)
		if err != nil {
			return nil, 0, err
		}
		grows += g
		out = binary.AppendUvarint(out, uint64(len(nfn)))
		out = append(out, nfn...)
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, 0, fmt.Errorf("%w: bad code section", errRewrite)
	}
	return out, grows, nil
}

func rewriteFunc(fn []byte, ix rewriteIndices) ([]byte, int, error) {
	r := &reader{b: fn}
	for n := r.u32(); n > 0 && r.err == nil; n-- { // locals
		r.u32()
		r.byte()
	}
	if r.err != nil {
		return nil, 0, r.err
	}
	out := append([]byte(nil), fn[:len(fn)-len(r.b)]...)
	grows := 0
	for len(r.b) > 0 {
		start := r.b
		op := r.byte()
		if op == 0x40 { // memory.grow 0
			if r.byte() != 0 {
				return nil, 0, fmt.Errorf("%w: memory.grow on memory other than 0", errRewrite)
			}
			out = append(out, 0x10)
			out = binary.AppendUvarint(out, uint64(ix.hook))
			grows++
			continue
		}
		r.immediates(op)
		if r.err != nil {
			return nil, 0, r.err
		}
		out = append(out, start[:len(start)-len(r.b)]...)
		if op != 0x10 {
			continue
		}
		switch callee := leb32(start[1:]); {
		case callee == ix.procExit:
			out = append(out, 0x00) // unreachable
		case callee < ix.imports: // global.get stop; if; unreachable; end
			out = append(out, 0x23)
			out = binary.AppendUvarint(out, uint64(ix.stop))
			out = append(out, 0x04, 0x40, 0x00, 0x0b)
		}
	}
	return out, grows, nil
}

// reader decodes the binary format; after the first error every read
// returns zero.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = fmt.Errorf("%w: cannot decode", errRewrite)
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) take(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.fail()
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (r *reader) skip(n int) { r.take(n) }

// leb skips a LEB128 number of at most maxBytes bytes and returns its low
// 64 bits unsigned.
func (r *reader) leb(maxBytes int) uint64 {
	var v uint64
	for i := 0; i < maxBytes; i++ {
		c := r.byte()
		if i < 10 {
			v |= uint64(c&0x7f) << (7 * i)
		}
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail()
	return 0
}

func (r *reader) u32() uint32 { return uint32(r.leb(5)) }

func (r *reader) limits() {
	flags := r.byte()
	r.leb(10)
	if flags&1 != 0 {
		r.leb(10)
	}
}

func (r *reader) memarg() {
	r.u32() // align (and memory index flag)
	r.leb(10)
}

// immediates skips the immediates of the instruction op.
func (r *reader) immediates(op byte) {
	switch {
	case op == 0x02 || op == 0x03 || op == 0x04: // block type: 0x40, a value type, or s33
		r.leb(5)
	case op == 0x0c || op == 0x0d || op == 0x10: // br, br_if, call
		r.u32()
	case op == 0x0e: // br_table
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			r.u32()
		}
		r.u32()
	case op == 0x11: // call_indirect
		r.u32()
		r.u32()
	case op == 0x1c: // select t*
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			r.byte()
		}
	case op >= 0x20 && op <= 0x26: // locals, globals, table.get/set
		r.u32()
	case op >= 0x28 && op <= 0x3e: // loads and stores
		r.memarg()
	case op == 0x3f || op == 0x40: // memory.size, memory.grow
		r.byte()
	case op == 0x41: // i32.const
		r.leb(5)
	case op == 0x42: // i64.const
		r.leb(10)
	case op == 0x43:
		r.skip(4)
	case op == 0x44:
		r.skip(8)
	case op == 0xd0: // ref.null t
		r.byte()
	case op == 0xd2: // ref.func
		r.u32()
	case op == 0xfc:
		r.prefixFC(r.u32())
	case op == 0xfd:
		r.prefixFD(r.u32())
	case op == 0xfe: // atomics: memarg, except atomic.fence
		if r.u32() == 0x03 {
			r.byte()
		} else {
			r.memarg()
		}
	case op <= 0x01 || op == 0x05 || op == 0x0b || op == 0x0f || op == 0x1a || op == 0x1b ||
		(op >= 0x45 && op <= 0xc4) || op == 0xd1:
		// no immediates
	default:
		r.fail()
	}
}

func (r *reader) prefixFC(sub uint32) {
	switch {
	case sub <= 7: // saturating truncations
	case sub == 8: // memory.init
		r.u32()
		r.byte()
	case sub == 9 || sub == 13 || sub == 15 || sub == 16 || sub == 17: // data.drop, elem.drop, table.grow/size/fill
		r.u32()
	case sub == 10: // memory.copy
		r.byte()
		r.byte()
	case sub == 11: // memory.fill
		r.byte()
	case sub == 12 || sub == 14: // table.init, table.copy
		r.u32()
		r.u32()
	default:
		r.fail()
	}
}

func (r *reader) prefixFD(sub uint32) {
	switch {
	case sub <= 11 || sub == 92 || sub == 93: // loads and stores
		r.memarg()
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		r.skip(16)
	case sub >= 21 && sub <= 34: // extract and replace lane
		r.byte()
	case sub >= 84 && sub <= 91: // load and store lane
		r.memarg()
		r.byte()
	case sub <= 255:
		// every other SIMD instruction has no immediates
	default:
		r.fail()
	}
}
