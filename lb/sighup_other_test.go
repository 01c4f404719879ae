//go:build !unix

package lb

import "testing"

// raiseSIGHUP: there is no SIGHUP to send here; the rest of the test has run.
func raiseSIGHUP(t *testing.T) { t.Skip("SIGHUP is Unix-only") }
