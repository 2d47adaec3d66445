// Package plainjson reads the plain subset of JSON that the grid's hot
// bodies are written in (the Go client's requests, the server's lease
// answers): objects, arrays, strings of printable ASCII without escapes,
// integers, booleans and null. Its readers allocate only what they return
// and never guess: on anything outside that subset they return false, and
// the caller decodes the same bytes with encoding/json, so what is
// accepted, the result and every error stay encoding/json's (each caller
// fuzzes its fast path against it).
//
// It owns the scanning only. The shapes read (a heartbeat, a report, a
// lease answer) belong to their packages: scheduler/server for requests,
// api/client for answers. It must not import either.
package plainjson
