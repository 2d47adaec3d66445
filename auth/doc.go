// Package auth keeps a grid's secrets on disk: the cluster token a lone
// server or a dev grid creates in its data dir and reads back on restart.
// It also holds the cluster CA and its certificates (ca.go, tls.go), and
// the capabilities servers sign for storage peers with their certificate's
// key and peers verify against the CA (capability.go).
//
// It must not log or print a secret; a secret's file is readable by its
// owner only (mode 0600).
package auth
