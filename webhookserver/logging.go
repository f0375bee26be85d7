package webhookserver

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Bounds on what one request may write to the log and to its answer: the values come
// from outside and could otherwise fill a log line with kilobytes of anyone's choosing.
const (
	maxLoggedBytes    = 128
	maxErrorInfoBytes = 256
)

// Rejection and not-stored lines: the first logBurst of every logInterval, then one line
// that counts the others. Metrics count every one.
const (
	logBurst    = 10
	logInterval = 10 * time.Second
)

// clip shortens s to at most n bytes, cut at a character boundary, and says how long it
// was.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…[" + strconv.Itoa(len(s)) + " bytes]"
}

// logValue bounds an untrusted value for a log line.
func logValue(s string) string { return clip(s, maxLoggedBytes) }
