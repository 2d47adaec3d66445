package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/auth"
)

// userError is an error said in the user's terms: what was wrong and what
// to do about it, on one line. The chain of internals it stands for is its
// cause, printed only with --debug.
type userError struct {
	msg   string
	cause error
}

func (e *userError) Error() string { return e.msg }
func (e *userError) Unwrap() error { return e.cause }

// explain turns the errors a newcomer meets most (a wrong address, port or
// token) into a userError saying what to do; others it returns as they are.
// addr is the server address the command used.
func explain(err error, addr string) error {
	var ue *userError
	if errors.As(err, &ue) {
		return ue
	}
	if msg := explanation(err, addr); msg != "" {
		return &userError{msg: msg, cause: err}
	}
	return err
}

func explanation(err error, addr string) string {
	var st *client.StatusError
	isStatus := errors.As(err, &st)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing is listening at %s (connection refused): is the grid running, and is --addr (or PEERGRID_ADDR) a server's API address? `peergrid dev` prints it", addr)
	case isStatus && st.Code == 401:
		return fmt.Sprintf("the server at %s refused your credential (HTTP 401: %s): check --token or PEERGRID_TOKEN (`peergrid dev` prints one; an operator gives you yours)", addr, st.Message)
	case isStatus && st.Code == 403:
		return fmt.Sprintf("your credential may not do this (%s): ask an operator for a credential whose role may", st.Message)
	case errors.Is(err, auth.ErrIdentity) && strings.Contains(err.Error(), "a worker's"):
		return fmt.Sprintf("%s is a storage peer's shard address, not a server's API (its certificate is a worker's): use a server's --bind address, as `peergrid dev` prints in PEERGRID_ADDR", addr)
	case isStatus && st.Code == 404 && st.Message == "404 page not found": // a storage peer without TLS, or another web server
		return fmt.Sprintf("%s is not a peergrid server's API (it answered 404 page not found; a storage peer's shard address?): use a server's --bind address, as `peergrid dev` prints in PEERGRID_ADDR", addr)
	case notTheAPI(err):
		return fmt.Sprintf("%s does not answer as a peergrid API server (the TLS handshake failed; the Raft port?): use a server's --bind address, as `peergrid dev` prints in PEERGRID_ADDR (Raft listens on the next port)", addr)
	}
	return ""
}

// notTheAPI tells a connection that broke during or right after the TLS
// handshake (the Raft port wants a server's certificate and hangs up on a
// client without one) from an answer of the API.
func notTheAPI(err error) bool {
	var recErr tls.RecordHeaderError
	var alert tls.AlertError
	if errors.As(err, &recErr) || errors.As(err, &alert) || errors.Is(err, io.EOF) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "tls: ") && !strings.Contains(msg, "pinned cluster CA")
}
