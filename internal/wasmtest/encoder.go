// Package wasmtest assembles small WebAssembly modules by hand, for tests
// that need hostile or exact guests (loop forever, eat memory, flood output,
// print known bytes) without paying for a Go or C toolchain, or for the
// seconds wazero needs to compile a Go-built module.
//
// A Module is built by declaring imports first, then functions, memory, data
// and exports; Bytes encodes it in the WebAssembly 1.0 binary format. Function
// bodies are raw instruction bytes, written with the Code helpers.
package wasmtest

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// ValType is a WebAssembly value type.
type ValType byte

// The value types these modules use.
const (
	I32 ValType = 0x7f
	I64 ValType = 0x7e
)

// NoMax means a memory without a declared maximum.
const NoMax = ^uint32(0)

// WASI is the import module name of WASI preview 1.
const WASI = "wasi_snapshot_preview1"

type funcType struct{ params, results []ValType }

func (t funcType) key() string { return fmt.Sprint(t.params, t.results) }

type importFunc struct {
	module, name string
	typ          uint32
}

type function struct {
	typ    uint32
	locals []ValType
	body   Code
}

type dataSegment struct {
	offset uint32
	bytes  []byte
}

type export struct {
	name string
	kind byte // 0x00 function, 0x02 memory
	idx  uint32
}

// Module is a WebAssembly module under construction.
type Module struct {
	types   []funcType
	typeIdx map[string]uint32
	imports []importFunc
	funcs   []function
	memory  *[2]uint32 // min, max pages
	table   *uint32    // funcref entries
	elems   []uint32   // the table's first entries, from 0
	refs    []uint32   // functions ref.func may name (a declarative segment)
	data    []dataSegment
	exports []export
}

// NewModule returns an empty module.
func NewModule() *Module { return &Module{typeIdx: map[string]uint32{}} }

func (m *Module) typeOf(params, results []ValType) uint32 {
	t := funcType{params, results}
	if i, ok := m.typeIdx[t.key()]; ok {
		return i
	}
	i := uint32(len(m.types))
	m.types = append(m.types, t)
	m.typeIdx[t.key()] = i
	return i
}

// Import declares an imported function and returns its function index.
// Imports take the first indices, so all imports must come before Func.
func (m *Module) Import(module, name string, params, results []ValType) uint32 {
	if len(m.funcs) > 0 {
		panic("wasmtest: Import after Func would shift function indices")
	}
	m.imports = append(m.imports, importFunc{module, name, m.typeOf(params, results)})
	return uint32(len(m.imports) - 1)
}

// wasiSignatures are the WASI preview 1 functions these modules call.
var wasiSignatures = map[string]funcType{
	"fd_write":          {[]ValType{I32, I32, I32, I32}, []ValType{I32}},
	"fd_read":           {[]ValType{I32, I32, I32, I32}, []ValType{I32}},
	"proc_exit":         {[]ValType{I32}, nil},
	"clock_time_get":    {[]ValType{I32, I64, I32}, []ValType{I32}},
	"random_get":        {[]ValType{I32, I32}, []ValType{I32}},
	"args_sizes_get":    {[]ValType{I32, I32}, []ValType{I32}},
	"args_get":          {[]ValType{I32, I32}, []ValType{I32}},
	"environ_sizes_get": {[]ValType{I32, I32}, []ValType{I32}},
	"environ_get":       {[]ValType{I32, I32}, []ValType{I32}},
}

// ImportWASI imports a WASI preview 1 function by name with its signature.
func (m *Module) ImportWASI(name string) uint32 {
	sig, ok := wasiSignatures[name]
	if !ok {
		panic("wasmtest: unknown WASI function " + name)
	}
	return m.Import(WASI, name, sig.params, sig.results)
}

// Func adds a function and returns its index. The body is the instruction
// bytes without the final end, which Func adds.
func (m *Module) Func(params, results, locals []ValType, body Code) uint32 {
	m.funcs = append(m.funcs, function{m.typeOf(params, results), locals, body})
	return uint32(len(m.imports) + len(m.funcs) - 1)
}

// Memory declares the module's memory in 64 KiB pages (max NoMax for none)
// and exports it as "memory", as WASI requires.
func (m *Module) Memory(minPages, maxPages uint32) {
	m.memory = &[2]uint32{minPages, maxPages}
	m.exports = append(m.exports, export{"memory", 0x02, 0})
}

// Data places bytes in memory at offset when the module is instantiated.
func (m *Module) Data(offset uint32, b []byte) {
	m.data = append(m.data, dataSegment{offset, b})
}

// Table declares a funcref table of size entries whose first entries are
// the functions init.
func (m *Module) Table(size uint32, init []uint32) {
	m.table, m.elems = &size, init
}

// Declare lets ref.func name the functions fns.
func (m *Module) Declare(fns ...uint32) { m.refs = append(m.refs, fns...) }

// FuncType is the index of the function type (params) -> (results), for
// call_indirect.
func (m *Module) FuncType(params, results []ValType) uint32 { return m.typeOf(params, results) }

// Export exports a function under name.
func (m *Module) Export(name string, fn uint32) {
	m.exports = append(m.exports, export{name, 0x00, fn})
}

// Bytes encodes the module.
func (m *Module) Bytes() []byte {
	out := []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}
	out = section(out, 1, m.typeSection())
	out = section(out, 2, m.importSection())
	out = section(out, 3, m.functionSection())
	out = section(out, 4, m.tableSection())
	out = section(out, 5, m.memorySection())
	out = section(out, 7, m.exportSection())
	out = section(out, 9, m.elementSection())
	out = section(out, 10, m.codeSection())
	return section(out, 11, m.dataSection())
}

func (m *Module) typeSection() []byte {
	if len(m.types) == 0 {
		return nil
	}
	b := uleb(nil, uint64(len(m.types)))
	for _, t := range m.types {
		b = append(b, 0x60)
		b = valTypes(b, t.params)
		b = valTypes(b, t.results)
	}
	return b
}

func (m *Module) importSection() []byte {
	if len(m.imports) == 0 {
		return nil
	}
	b := uleb(nil, uint64(len(m.imports)))
	for _, im := range m.imports {
		b = name(b, im.module)
		b = name(b, im.name)
		b = append(b, 0x00)
		b = uleb(b, uint64(im.typ))
	}
	return b
}

func (m *Module) functionSection() []byte {
	if len(m.funcs) == 0 {
		return nil
	}
	b := uleb(nil, uint64(len(m.funcs)))
	for _, f := range m.funcs {
		b = uleb(b, uint64(f.typ))
	}
	return b
}

func (m *Module) memorySection() []byte {
	if m.memory == nil {
		return nil
	}
	b := []byte{1}
	if m.memory[1] == NoMax {
		return uleb(append(b, 0x00), uint64(m.memory[0]))
	}
	b = uleb(append(b, 0x01), uint64(m.memory[0]))
	return uleb(b, uint64(m.memory[1]))
}

func (m *Module) tableSection() []byte {
	if m.table == nil {
		return nil
	}
	return uleb([]byte{1, 0x70, 0x00}, uint64(*m.table)) // funcref, no maximum
}

func (m *Module) elementSection() []byte {
	var segs [][]byte
	if len(m.elems) > 0 { // active, table 0, at 0
		segs = append(segs, funcIndices(append(Code{0x00}.I32Const(0), 0x0b), m.elems))
	}
	if len(m.refs) > 0 { // declarative, function indices
		segs = append(segs, funcIndices([]byte{0x03, 0x00}, m.refs))
	}
	if len(segs) == 0 {
		return nil
	}
	b := uleb(nil, uint64(len(segs)))
	for _, seg := range segs {
		b = append(b, seg...)
	}
	return b
}

func funcIndices(b []byte, fns []uint32) []byte {
	b = uleb(b, uint64(len(fns)))
	for _, f := range fns {
		b = uleb(b, uint64(f))
	}
	return b
}

func (m *Module) exportSection() []byte {
	if len(m.exports) == 0 {
		return nil
	}
	b := uleb(nil, uint64(len(m.exports)))
	for _, e := range m.exports {
		b = name(b, e.name)
		b = append(b, e.kind)
		b = uleb(b, uint64(e.idx))
	}
	return b
}

func (m *Module) codeSection() []byte {
	if len(m.funcs) == 0 {
		return nil
	}
	b := uleb(nil, uint64(len(m.funcs)))
	for _, f := range m.funcs {
		body := locals(nil, f.locals)
		body = append(append(body, f.body...), 0x0b)
		b = uleb(b, uint64(len(body)))
		b = append(b, body...)
	}
	return b
}

func (m *Module) dataSection() []byte {
	if len(m.data) == 0 {
		return nil
	}
	b := uleb(nil, uint64(len(m.data)))
	for _, d := range m.data {
		b = append(b, 0x00) // active, memory 0
		b = append(Code(b).I32Const(int32(d.offset)), 0x0b)
		b = uleb(b, uint64(len(d.bytes)))
		b = append(b, d.bytes...)
	}
	return b
}

// locals encodes local declarations, grouping runs of the same type.
func locals(b []byte, ts []ValType) []byte {
	type run struct {
		n int
		t ValType
	}
	var runs []run
	for _, t := range ts {
		if len(runs) > 0 && runs[len(runs)-1].t == t {
			runs[len(runs)-1].n++
			continue
		}
		runs = append(runs, run{1, t})
	}
	b = uleb(b, uint64(len(runs)))
	for _, r := range runs {
		b = append(uleb(b, uint64(r.n)), byte(r.t))
	}
	return b
}

func section(out []byte, id byte, body []byte) []byte {
	if body == nil {
		return out
	}
	out = append(out, id)
	out = uleb(out, uint64(len(body)))
	return append(out, body...)
}

func valTypes(b []byte, ts []ValType) []byte {
	b = uleb(b, uint64(len(ts)))
	for _, t := range ts {
		b = append(b, byte(t))
	}
	return b
}

func name(b []byte, s string) []byte {
	if strings.ContainsRune(s, 0) {
		panic("wasmtest: NUL in name")
	}
	return append(uleb(b, uint64(len(s))), s...)
}

func uleb(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func sleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		done := (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0)
		if done {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
