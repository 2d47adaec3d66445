// Package proctest is the one harness for tests that need several OS
// processes: real `peergrid agent` servers and workers on loopback, killed
// and signalled as a machine or an operator would.
//
//   - Binary builds the peergrid binary once per test process, cached under
//     os.TempDir() by the module's source state, so packages and runs share it.
//   - Start runs the binary with flags as a child process whose output goes to
//     a log file, dumped into the test log when the test fails; Run runs a CLI
//     command to completion. A Proc can be killed (Kill9: SIGKILL to the
//     process alone), signalled (Signal: SIGTERM, SIGINT), frozen and thawed
//     (Pause, Resume: SIGSTOP, SIGCONT) and waited for (Wait, Exited, ExitCode).
//   - StartServers forms a group of n servers through --join and
//     --bootstrap-expect n on free ports; AddWorker adds worker agents;
//     Restart brings a server back from its data dir; Leader and
//     Eventually poll through the api client with a deadline, never sleeping
//     to let things settle.
//   - On Linux a process can run on a host of a test network: StartIn and
//     RunIn run the binary inside a network namespace (`ip netns exec`
//     execs it in place, so the Proc is still the agent itself), and
//     Options.Hosts places servers on hosts, bound to the hosts' IPs;
//     DialIn and TransportIn let the test's own code connect from inside a
//     namespace. Making the namespaces and cutting their links is the
//     nemesis package's business, not this one's.
//
// Everything a test starts is killed with its process group when the test
// ends, and on Linux also when the test binary itself dies (a timeout, a
// crash): children are forked from one OS thread that lives as long as the
// process and carry a parent-death signal.
//
// The processes under test are reached only through the binary's flags and
// the HTTP API: this package imports api, never the server or worker code.
package proctest
