// Package stream is the wire format of a worker stream: one long-lived,
// authenticated connection per worker that carries its heartbeats, leases
// and reports as framed messages instead of one HTTP request each (see
// scheduler/server's stream.go and api/client's stream.go).
//
// A client opens it with an HTTP/1.1 request on the API's own TLS port,
//
//	GET /v1/stream
//	Connection: Upgrade
//	Upgrade: peergrid-worker/1
//
// which the server authenticates like any other request and answers 101
// Switching Protocols; from then on each side writes frames (Frame). A
// request's body is the JSON its HTTP route takes (api.HeartbeatRequest,
// api.LeaseRequest, api.ReportRequest), and its answer's the JSON that
// route answers, so both sides reuse the same encoders and decoders.
//
// A client may list optional features in the upgrade's
// Peergrid-Stream-Features header; the 101 lists those the server serves
// (none from a server that predates the header). With quiet-heartbeats a
// client may send a heartbeat that is answered only when its answer says
// something new (stale leases, repair orders, distrust, an error).
//
// It owns the frame layout, the kinds, the error body and the limits; it
// must not know the ledger, the handlers or the client's failover, and it
// does no I/O beyond the reader or writer it is given.
package stream
