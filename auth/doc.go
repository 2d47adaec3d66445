// Package auth keeps a grid's secrets on disk: the cluster token a lone
// server or a dev grid creates in its data dir and reads back on restart.
//
// It must not log or print a secret; a secret's file is readable by its
// owner only (mode 0600).
package auth
