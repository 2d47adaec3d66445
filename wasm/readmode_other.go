//go:build !unix

package wasm

import "os"

// setBlocking is a no-op here: answers are always awaited on the poller.
func setBlocking(*os.File, bool) bool { return false }
