package server

import "testing"

// SetMaxCapShards lowers how many shards one capability names, so a test
// sees a peer given several, until the test's cleanup. Call it before
// starting a grid: cleanups run last-registered first, so the grid (closed
// by a later cleanup or a defer) has stopped reading it by then.
func SetMaxCapShards(t testing.TB, n int) {
	old := maxCapShards
	maxCapShards = n
	t.Cleanup(func() { maxCapShards = old })
}

// OpenStreams is how many worker streams s holds open.
func OpenStreams(s *Server) int { return s.streams.count() }

// StreamFrames is how many requests s admitted on worker streams.
func StreamFrames(s *Server) int64 { return s.streamFrames.Load() }

// QuietHeartbeatsUnanswered counts the quiet heartbeats the server served
// without writing an answer.
func QuietHeartbeatsUnanswered(s *Server) int64 { return s.streamQuiet.Load() }

// StreamChecksKept counts the stream messages whose credential check was
// kept from the one before (the ledger unchanged, the credential unexpired).
func StreamChecksKept(s *Server) int64 { return s.streamAuthCached.Load() }

// StreamReadsSkipped counts the reads stream readers did not make because
// the read before had drained the socket (see streamread.go).
func StreamReadsSkipped(s *Server) int64 { return s.streamReadSkips.Load() }
