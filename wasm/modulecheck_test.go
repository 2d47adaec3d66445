package wasm

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// moduleBytes encodes sections (id, body) after the header.
func moduleBytes(sections ...[]byte) []byte {
	out := []byte{0x00, 'a', 's', 'm', 1, 0, 0, 0}
	for _, s := range sections {
		out = append(out, s[0])
		out = binary.AppendUvarint(out, uint64(len(s)-1))
		out = append(out, s[1:]...)
	}
	return out
}

// localsBomb is a module whose only function, the exported _start,
// declares groups of i32 locals of the given sizes and does nothing. With
// one group of 250 million it is 44 bytes.
func localsBomb(groups ...uint32) []byte {
	body := binary.AppendUvarint(nil, uint64(len(groups)))
	for _, n := range groups {
		body = binary.AppendUvarint(body, uint64(n))
		body = append(body, 0x7f)
	}
	body = append(body, 0x0b)
	code := append(binary.AppendUvarint([]byte{secCode, 1}, uint64(len(body))), body...)
	return moduleBytes(
		[]byte{secType, 1, 0x60, 0, 0},
		[]byte{secFunction, 1, 0},
		[]byte{secExport, 1, 6, '_', 's', 't', 'a', 'r', 't', 0, 0},
		code)
}

// nestedBlocks is a module whose _start nests depth empty blocks.
func nestedBlocks(depth int) []byte {
	m := wasmtest.NewModule()
	c := make(wasmtest.Code, 0, 3*depth)
	for range depth {
		c = c.Block()
	}
	for range depth {
		c = c.End()
	}
	m.Export("_start", m.Func(nil, nil, nil, c))
	return m.Bytes()
}

func wantRefusedNaming(t *testing.T, err error, limit string) {
	t.Helper()
	wantKind(t, err, KindInvalidModule)
	if !strings.Contains(err.Error(), limit) {
		t.Fatalf("err = %v, want it to name the limit %s", err, limit)
	}
}

// Acceptance: the locals bomb of issue 13 (250 million locals grew an
// executor to 6.3 GB; 2^32-1 crashed it) is refused before any engine
// compiles it, on every engine, in-process and through executors; so is a
// bomb whose groups only overflow 32 bits together.
func TestEngines_LocalsBombIsRefusedBeforeCompiling(t *testing.T) {
	bombs := map[string][]byte{
		"250M":          localsBomb(250_000_000),
		"2^32-1":        localsBomb(1<<32 - 1),
		"2x2^31":        localsBomb(1<<31, 1<<31),
		"limit+1 split": localsBomb(MaxFunctionLocals/2, MaxFunctionLocals/2+1),
	}
	if n := len(bombs["250M"]); n > 55 {
		t.Fatalf("the bomb is %d bytes; issue 13's was 55", n)
	}
	hashes := map[string]string{}
	for name, b := range bombs {
		hashes[name] = put(t, b)
	}
	atLimit := put(t, localsBomb(MaxFunctionLocals))
	eachRunner(t, func(t *testing.T, r runner) {
		for name, h := range hashes {
			res, err := r.run(testCtx(t), &Request{ModuleHash: h, Limits: Limits{MemoryBytes: 1 << 20}})
			if res != nil {
				t.Fatalf("%s: the module ran: %+v", name, res)
			}
			wantRefusedNaming(t, err, "over the limit of 50000")
		}
		if _, err := r.run(testCtx(t), &Request{ModuleHash: atLimit}); err != nil {
			t.Fatalf("%d locals, at the limit: %v", MaxFunctionLocals, err)
		}
	})
}

// Acceptance: 100,000 nested blocks (77 s to compile on main) are refused
// on every engine.
func TestEngines_DeepNestingIsRefusedBeforeCompiling(t *testing.T) {
	deep := put(t, nestedBlocks(100_000))
	eachRunner(t, func(t *testing.T, r runner) {
		_, err := r.run(testCtx(t), &Request{ModuleHash: deep})
		wantRefusedNaming(t, err, "nest deeper than the limit of 5000")
	})
}

func TestCheckStructure_NestingLimitIsExact(t *testing.T) {
	if err := checkStructure(nestedBlocks(MaxBlockNesting)); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	wantRefusedNaming(t, checkStructure(nestedBlocks(MaxBlockNesting+1)), "limit of 5000")
}

func TestCheckStructure_RefusesTooManyFunctionsABigBodyAndABigTable(t *testing.T) {
	for name, tc := range map[string]struct {
		module []byte
		limit  string
	}{
		// Only the counts: the check refuses before reading entries.
		"functions": {moduleBytes(binary.AppendUvarint([]byte{secFunction}, MaxFunctions+1)), "over the limit of 1000000"},
		"imports and functions": {moduleBytes(
			append([]byte{secImport, 1, 1, 'm', 1, 'f', 0}, 0), // one imported function
			binary.AppendUvarint([]byte{secFunction}, MaxFunctions)), "1000001 functions"},
		"body":  {moduleBytes(binary.AppendUvarint([]byte{secCode, 1}, MaxFunctionSize+1)), "over the limit of 7654321 bytes"},
		"table": {moduleBytes(binary.AppendUvarint([]byte{secTable, 1, 0x70, 0}, MaxTableEntries+1)), "over the limit of 10000000"},
	} {
		t.Run(name, func(t *testing.T) { wantRefusedNaming(t, checkStructure(tc.module), tc.limit) })
	}
}

// The check passes every real module the tests and examples have, and it
// refuses bytes it cannot decode instead of letting an engine guess.
func TestCheckStructure_PassesRealModulesRefusesGarbage(t *testing.T) {
	for name, b := range map[string][]byte{"go guest": goGuest, "hello": wasmtest.Hello("a", "b", 0), "memory bomb": wasmtest.MemoryBomb()} {
		if err := checkStructure(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	garbage := moduleBytes([]byte{secCode, 1, 2, 0, 0xff})
	wantKind(t, checkStructure(garbage), KindInvalidModule)
}
