package wasmtest

// Code is a function body as raw instruction bytes. Each method appends one
// instruction and returns the longer body, so bodies read top to bottom:
//
//	wasmtest.Code{}.I32Const(3).Call(procExit)
type Code []byte

func (c Code) op(b ...byte) Code { return append(c, b...) }

// memarg appends an alignment (log2 bytes) and offset.
func (c Code) memarg(op byte, align, offset uint32) Code {
	c = append(c, op)
	c = uleb(c, uint64(align))
	return uleb(c, uint64(offset))
}

// Control instructions. Blocks have no result type (0x40).
func (c Code) Unreachable() Code      { return c.op(0x00) }
func (c Code) Block() Code            { return c.op(0x02, 0x40) }
func (c Code) Loop() Code             { return c.op(0x03, 0x40) }
func (c Code) If() Code               { return c.op(0x04, 0x40) }
func (c Code) Else() Code             { return c.op(0x05) }
func (c Code) End() Code              { return c.op(0x0b) }
func (c Code) Br(depth uint32) Code   { return Code(uleb(c.op(0x0c), uint64(depth))) }
func (c Code) BrIf(depth uint32) Code { return Code(uleb(c.op(0x0d), uint64(depth))) }
func (c Code) Return() Code           { return c.op(0x0f) }
func (c Code) Call(fn uint32) Code    { return Code(uleb(c.op(0x10), uint64(fn))) }
func (c Code) Drop() Code             { return c.op(0x1a) }

// CallIndirect calls the function at the index on the stack in table 0,
// of type typ (Module.FuncType).
func (c Code) CallIndirect(typ uint32) Code { return Code(uleb(c.op(0x11), uint64(typ))).op(0x00) }
func (c Code) TableGet() Code               { return c.op(0x25, 0x00) }
func (c Code) TableSet() Code               { return c.op(0x26, 0x00) }
func (c Code) RefIsNull() Code              { return c.op(0xd1) }
func (c Code) RefFunc(fn uint32) Code       { return Code(uleb(c.op(0xd2), uint64(fn))) }

// Variables.
func (c Code) LocalGet(i uint32) Code { return Code(uleb(c.op(0x20), uint64(i))) }
func (c Code) LocalSet(i uint32) Code { return Code(uleb(c.op(0x21), uint64(i))) }
func (c Code) LocalTee(i uint32) Code { return Code(uleb(c.op(0x22), uint64(i))) }

// Memory.
func (c Code) I32Load(offset uint32) Code   { return c.memarg(0x28, 2, offset) }
func (c Code) I32Load8U(offset uint32) Code { return c.memarg(0x2d, 0, offset) }
func (c Code) I32Store(offset uint32) Code  { return c.memarg(0x36, 2, offset) }
func (c Code) I32Store8(offset uint32) Code { return c.memarg(0x3a, 0, offset) }
func (c Code) MemorySize() Code             { return c.op(0x3f, 0x00) }
func (c Code) MemoryGrow() Code             { return c.op(0x40, 0x00) }

// Numbers.
func (c Code) I32Const(v int32) Code { return Code(sleb(c.op(0x41), int64(v))) }
func (c Code) I64Const(v int64) Code { return Code(sleb(c.op(0x42), v)) }
func (c Code) I32Eqz() Code          { return c.op(0x45) }
func (c Code) I32Eq() Code           { return c.op(0x46) }
func (c Code) I32Ne() Code           { return c.op(0x47) }
func (c Code) I32LtU() Code          { return c.op(0x49) }
func (c Code) I32GeU() Code          { return c.op(0x4f) }
func (c Code) I32Add() Code          { return c.op(0x6a) }
func (c Code) I32Sub() Code          { return c.op(0x6b) }
func (c Code) I32Mul() Code          { return c.op(0x6c) }
func (c Code) I32Shl() Code          { return c.op(0x74) }
func (c Code) I32DivU() Code         { return c.op(0x6e) }
func (c Code) I32Or() Code           { return c.op(0x72) }
