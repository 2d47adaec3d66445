package server

import (
	"fmt"
	"testing"

	"github.com/peergrid/peergrid/api"
)

// TestHeldSet_LongAndShortListsAnswerAlike: a worker's held list is
// searched by a scan when short and by a set when long, with one answer.
func TestHeldSet_LongAndShortListsAnswerAlike(t *testing.T) {
	var held []api.TaskRef
	for i := range 40 {
		held = append(held, api.TaskRef{Job: fmt.Sprint("j", i%3), Index: i, Attempt: 1 + i%2})
	}
	for _, n := range []int{0, 3, 32, 33, 40} {
		holds := heldSet(held[:n])
		for i, ref := range held {
			if got := holds(ref); got != (i < n) {
				t.Fatalf("%d held: holds(%+v) = %v", n, ref, got)
			}
			other := ref
			other.Attempt++
			if holds(other) {
				t.Fatalf("%d held: holds another attempt %+v", n, other)
			}
		}
	}
}
