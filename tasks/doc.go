// Package tasks owns the job and task model: job files (TOML) and their
// validation, the JobSpec the ledger keeps, task and job states, and argument
// placeholders.
//
// It must not depend on any other peergrid package, touch the network, or know
// how tasks are scheduled or run: it describes work, it does not do it.
package tasks
