package auth

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLoadOrCreateToken_CreatesOnceOwnerOnly: the first call makes a token
// file readable by its owner only; later calls read the same token back.
func TestLoadOrCreateToken_CreatesOnceOwnerOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first, err := LoadOrCreateToken(dir)
	if err != nil || len(first) != 48 {
		t.Fatalf("token %q, %v", first, err)
	}
	st, err := os.Stat(filepath.Join(dir, "token"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	again, err := LoadOrCreateToken(dir)
	if err != nil || again != first {
		t.Fatalf("second call gave %q, %v; want %q", again, err, first)
	}
}
