package wasmtest

import (
	"encoding/binary"
	"math"
)

// NaN cases NaNProbe computes, in the order it writes their results.
var NaNCases = []string{
	"f64 0/0", "f64 sqrt(-1)", "f64 inf-inf",
	"f64 payload+1", "f64 1+payload", "f64 payloadA+payloadB", "f64 payloadB+payloadA",
	"f64 signaling*1", "f64 min(payload,1)", "f64 floor(payload)",
	"f64 neg(payload)", "f64 copysign(payload,-1)",
	"f32 0/0", "f32 payload+1", "f32 demote(f64 payload)", "f64 promote(f32 payload)",
}

// Inputs the probe loads from memory (so no engine can fold them at
// compile time), at addrStatic in this order.
var nanInputs = []uint64{
	0,                    // 0: +0.0
	math.Float64bits(-1), // 8
	math.Float64bits(math.Inf(1)),
	math.Float64bits(1),         // 24
	0x7ff8_0000_dead_beef,       // 32: quiet NaN with payload A
	0xfff8_0000_0bad_f00d,       // 40: negative quiet NaN with payload B
	0x7ff0_0000_0000_0001,       // 48: signaling NaN
	uint64(0x7fc0_beef),         // 56: f32 quiet NaN with a payload (low 4 bytes)
	uint64(math.Float32bits(1)), // 64: f32 1.0
}

// NaNProbe writes, for each of NaNCases, the 8 bytes (little-endian) of the
// result's bits: float operations whose NaN results the WebAssembly spec
// leaves partly open (sign and payload of an arithmetic NaN), beside the
// bit operations (neg, copysign) whose NaNs it fixes.
func NaNProbe() []byte {
	m := newWASIModule()
	data := make([]byte, 0, 8*len(nanInputs))
	for _, v := range nanInputs {
		data = binary.LittleEndian.AppendUint64(data, v)
	}
	m.Data(addrStatic, data)
	f64 := func(slot int) Code { return Code{}.I32Const(0).memarg(0x2b, 3, uint32(addrStatic+8*slot)) } // f64.load
	f32 := func(slot int) Code { return Code{}.I32Const(0).memarg(0x2a, 2, uint32(addrStatic+8*slot)) } // f32.load
	const (
		zero, minusOne, inf, one, payA, payB, sig, f32pay, f32one = 0, 1, 2, 3, 4, 5, 6, 7, 8
	)
	cat := func(cs ...Code) Code {
		var out Code
		for _, c := range cs {
			out = append(out, c...)
		}
		return out
	}
	f64op := func(op byte) Code { return Code{op} }
	cases := []Code{
		cat(f64(zero), f64(zero), f64op(0xa3)), // f64.div
		cat(f64(minusOne), f64op(0x9f)),        // f64.sqrt
		cat(f64(inf), f64(inf), f64op(0xa1)),   // f64.sub
		cat(f64(payA), f64(one), f64op(0xa0)),  // f64.add
		cat(f64(one), f64(payA), f64op(0xa0)),
		cat(f64(payA), f64(payB), f64op(0xa0)),
		cat(f64(payB), f64(payA), f64op(0xa0)),
		cat(f64(sig), f64(one), f64op(0xa2)),       // f64.mul
		cat(f64(payA), f64(one), f64op(0xa4)),      // f64.min
		cat(f64(payA), f64op(0x9c)),                // f64.floor
		cat(f64(payA), f64op(0x9a)),                // f64.neg
		cat(f64(payA), f64(minusOne), f64op(0xa6)), // f64.copysign
	}
	f32cases := []Code{
		cat(Code{0x43, 0, 0, 0, 0}, f32(zero), Code{0x95}), // f32.const 0; f32.div
		cat(f32(f32pay), f32(f32one), Code{0x92}),          // f32.add
		cat(f64(payA), Code{0xb6}),                         // f32.demote_f64
	}
	var body Code
	slot := 0
	store := func(value Code, toI64 ...byte) {
		body = Code(body).I32Const(int32(addrBuf + 8*slot))
		body = append(append(body, value...), toI64...)
		body = body.memarg(0x37, 3, 0) // i64.store
		slot++
	}
	for _, c := range cases {
		store(c, 0xbd) // i64.reinterpret_f64
	}
	for _, c := range f32cases {
		store(c, 0xbc, 0xad) // i32.reinterpret_f32, i64.extend_i32_u
	}
	store(cat(f32(f32pay), Code{0xbb}), 0xbd) // f64.promote_f32
	body = append(body, m.writeStatic(1, addrBuf, int32(8*slot))...)
	return m.command(nil, body)
}
