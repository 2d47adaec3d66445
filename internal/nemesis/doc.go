// Package nemesis owns the grid's fault-injection suite, in the spirit of
// Jepsen and hashicorp/raft's fuzzy tests: real `peergrid agent` processes
// (built and run by proctest), each on its own host of a test network, a
// schedule of faults drawn from a seed, a history of client calls, and
// checks of that history and of the grid afterwards.
//
//   - Net is the test network: a Linux network namespace per host, each
//     with a veth on a bridge in the test's namespace, and permanent
//     neighbour entries so that a fault is silent (packets vanish; no RST,
//     no ICMP, no ARP failure). A cut moves hosts' veths onto bridges of
//     their own; a one-way drop is a policy-routing blackhole rule on the
//     receiving host (no iptables needed); a slow link is tc netem where the
//     kernel has it, else an HTB rate limit with a short queue. Everything
//     a Net makes is named from the test process's pid and removed when the
//     test ends; leftovers of a killed run are removed by the next.
//   - The nemeses: isolate the leader, split the grid (majority/minority),
//     drop one way between the leader and the rest, flap a server's link,
//     slow links, and pause the leader (SIGSTOP past an election, SIGCONT).
//   - The history records every client call (submit, status, cancel,
//     results, blob put and get) with its invocation and return times and
//     outcome; porcupine checks the job and blob records for
//     linearizability against small models (model.go). The grid's own
//     invariants are checked at the end (checks.go): every task done once
//     and byte-right, nothing acknowledged lost, every server on the same
//     ledger, no worker that reached a majority server ever listed down,
//     progress within 5 s of every new leader, every call ended within 10 s
//     with a right answer or a clear error.
//   - The defect tests (partition_test.go) each prove one way a real
//     partition used to hang or mislead a client or a worker.
//
// The suite reaches the grid only as its users do: through the binary's
// flags, the CLI run on the client host, and the Go client (client.go is
// the one place that uses it). It needs Linux, root and iproute2 (tc for
// slow links); elsewhere its tests skip and say why. A failing run keeps
// its process logs and history.json in a directory under os.TempDir()
// named for the seed, and prints its path and the seed.
package nemesis
