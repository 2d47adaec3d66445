// Command peergrid owns the command line: parsing flags, starting roles
// (dev, demo), and printing what the HTTP API returns.
//
// It must not hold grid logic: every client command goes through package api,
// exactly as a program of a user would; servers and workers are started from
// their own packages.
//
// What others wrote (job names, errors, peer ids) is printed through
// termSafe or termSafeText (termsafe.go), never raw; tokens come from the
// environment or --token-file (tokenfile.go) rather than a command line.
package main
