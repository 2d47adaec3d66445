// Package archtest checks that the package graph keeps the layers the tree
// shows: the ledger imports no transport, clock or randomness, the worker
// reaches the ledger only through the API, the sandbox knows nothing of the
// grid. It has tests only.
package archtest
