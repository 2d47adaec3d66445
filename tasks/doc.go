// Package tasks owns the job and task model: job files (TOML) and their
// validation, the JobSpec the ledger keeps (replication fields included),
// task and job states, argument placeholders, a task's content hash and
// seed, and the result hash that replicas of a task vote with.
//
// It must not depend on any other peergrid package, touch the network, or know
// how tasks are scheduled or run: it describes work, it does not do it.
package tasks
