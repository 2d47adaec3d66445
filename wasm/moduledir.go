package wasm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

var wasmMagic = []byte{0x00, 'a', 's', 'm'}

// CheckModule is a cheap check that data looks like a WebAssembly 1.0 binary
// (magic and version). It does not decode the module: compiling does.
func CheckModule(data []byte) error {
	if len(data) < 8 || !bytes.Equal(data[:4], wasmMagic) {
		return taskErrorf(KindInvalidModule, "not a WebAssembly module (starts with %q)", head(data, 8))
	}
	if v := binary.LittleEndian.Uint32(data[4:8]); v != 1 {
		return taskErrorf(KindInvalidModule, "unsupported WebAssembly binary version %d (want 1)", v)
	}
	return nil
}

func head(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// HashModule returns the hex SHA-256 of module bytes: the module's name.
func HashModule(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// validHash reports whether h is 64 lowercase hex digits, which also keeps
// a hash from naming a path outside the directory.
func validHash(h string) bool {
	if len(h) != 2*sha256.Size {
		return false
	}
	for _, c := range []byte(h) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ModuleDir is a directory of <hash>.wasm files, shared by the parent and
// its executors. Files are written once and never change.
type ModuleDir string

// Path is where the module with this hash lives.
func (d ModuleDir) Path(hash string) string { return filepath.Join(string(d), hash+".wasm") }

// Has reports whether the module with this hash is in the directory.
func (d ModuleDir) Has(hash string) bool {
	_, ok := d.size(hash)
	return ok
}

// size is the size of the module with this hash, if it is there.
func (d ModuleDir) size(hash string) (int64, bool) {
	if !validHash(hash) {
		return 0, false
	}
	fi, err := os.Stat(d.Path(hash))
	if err != nil {
		return 0, false
	}
	return fi.Size(), true
}

// Put checks data with CheckModule and stores it under its hash. It writes a
// temporary file and renames it, so readers never see a partial module, and
// it is idempotent: a module already there is not written again.
func (d ModuleDir) Put(data []byte) (hash string, err error) {
	if err := CheckModule(data); err != nil {
		return "", err
	}
	hash = HashModule(data)
	path := d.Path(hash)
	if fi, err := os.Stat(path); err == nil && fi.Size() == int64(len(data)) {
		return hash, nil
	}
	if err := os.MkdirAll(string(d), 0o755); err != nil {
		return "", fmt.Errorf("module dir: %w", err)
	}
	if err := writeFileAtomic(path, data); err != nil {
		return "", fmt.Errorf("module %s: %w", hash, err)
	}
	return hash, nil
}

func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// read loads the module with this hash and checks that its bytes still hash
// to it: a file damaged on disk is ErrModuleCorrupt, not a task failure.
func (d ModuleDir) read(hash string) ([]byte, error) {
	if !validHash(hash) {
		return nil, fmt.Errorf("module %q: %w (not a hex SHA-256)", hash, ErrModuleNotFound)
	}
	data, err := os.ReadFile(d.Path(hash))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("module %s: %w in %s", hash, ErrModuleNotFound, string(d))
	}
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", hash, err)
	}
	if got := HashModule(data); got != hash {
		return nil, fmt.Errorf("module %s: %w (file hashes to %s)", hash, ErrModuleCorrupt, got)
	}
	return data, nil
}

// declaredMemoryMin reads the memory section of a module and returns the
// bytes its first memory needs at start, or 0 if there is none or the bytes
// do not decode (compiling reports that). It lets Run refuse a module whose
// initial memory is over the limit before instantiating it.
func declaredMemoryMin(data []byte) uint64 {
	pages, _, _ := declaredMemory(data)
	return pages * wasmPageSize
}

// declaredMemory reads the limits of a module's first memory in pages:
// its minimum, and its maximum if it declares one (zeros if it has none or
// the bytes do not decode).
func declaredMemory(data []byte) (minPages, maxPages uint64, hasMax bool) {
	const memorySection = 5
	p := data[8:]
	for len(p) > 0 {
		id := p[0]
		size, n := binary.Uvarint(p[1:])
		if n <= 0 || size > uint64(len(p)-1-n) {
			return 0, 0, false
		}
		body := p[1+n : 1+n+int(size)]
		p = p[1+n+int(size):]
		if id != memorySection {
			continue
		}
		count, n := binary.Uvarint(body)
		if n <= 0 || count == 0 || len(body) < n+2 {
			return 0, 0, false
		}
		flags := body[n]
		pages, m := binary.Uvarint(body[n+1:]) // after the limits flags byte
		if m <= 0 || pages > 1<<32 {
			return 0, 0, false
		}
		if flags&1 != 0 {
			if hi, k := binary.Uvarint(body[n+1+m:]); k > 0 {
				return pages, hi, true
			}
		}
		return pages, 0, false
	}
	return 0, 0, false
}
