// Package replicatest holds the grid-level acceptance tests of replicated
// tasks (issue 14): a quorum of result hashes against lying workers,
// colluders and the odds they win, placement by distinct credentials,
// no_quorum with its evidence, adaptive replication, churn with replicas,
// and the result cache of a replicated job. They run on real dev grids and
// test clusters (real Raft, loopback sockets, temp dirs), mixing real
// workers (package worker) with lying ones (package liar). The package has
// no code of its own beyond its tests.
package replicatest
