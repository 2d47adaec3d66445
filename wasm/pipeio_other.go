//go:build !linux

package wasm

import "os"

// rawPipe is Linux only: elsewhere it reads and writes through the os.File.
type rawPipe struct{ f *os.File }

func newRawPipe(f *os.File) *rawPipe { return &rawPipe{f: f} }

func (r *rawPipe) read(b []byte) (int, error)  { return r.f.Read(b) }
func (r *rawPipe) write(b []byte) (int, error) { return r.f.Write(b) }
