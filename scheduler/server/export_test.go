package server

// SetMaxCapShards lowers how many shards one capability names, so a test
// sees a peer given several; it returns the undo.
func SetMaxCapShards(n int) func() {
	old := maxCapShards
	maxCapShards = n
	return func() { maxCapShards = old }
}
