package tencent

import (
	"errors"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// redacted replaces what is cut out of error texts.
const redacted = "[redacted]"

// sigParam is a usersig query parameter, whole or cut short (an excerpt of an echo).
var sigParam = regexp.MustCompile(`(?i)usersig=[^&\s"']*`)

// redactQuery removes the request's query string, which carries the admin UserSig, from
// err and everything it wraps, so that callers may copy error texts into conditions,
// Events and logs. Transport errors keep their types (*url.Error with the query cut off
// its URL) so that errors.Is, errors.As and IsRetryable still see the cause; APIError and
// HTTPStatusError keep their fields with the secrets cut out. Any other error that still
// quotes a secret (one from a custom transport, say) is replaced by its redacted text,
// which answers Is and Timeout as the original does but unwraps no further.
// Extra secrets of the request (a callback token in its body) are cut out too.
func redactQuery(err error, sig, query string, extra ...string) error {
	r := redactor{secrets: []string{"?" + query, query, sig, url.QueryEscape(sig)}}
	for _, s := range extra {
		r.secrets = append(r.secrets, s, url.QueryEscape(s))
	}
	return r.redact(err)
}

type redactor struct {
	secrets []string // longest first, so a query is cut whole rather than around its sig
}

func (r redactor) redact(err error) error {
	switch e := err.(type) {
	case nil:
		return nil
	case *APIError:
		e.Info, e.RequestID = r.scrub(e.Info), r.scrub(e.RequestID)
		return e
	case *HTTPStatusError:
		e.Body = r.scrub(e.Body)
		return e
	case *transportError:
		return &transportError{command: e.command, err: r.redact(e.err)}
	case *url.Error:
		return &url.Error{Op: e.Op, URL: withoutQuery(e.URL), Err: r.redact(e.Err)}
	}
	if msg := err.Error(); r.leaks(msg) {
		return &redactedError{msg: r.scrub(msg), cause: err}
	}
	return err
}

func (r redactor) leaks(s string) bool {
	for _, secret := range r.secrets {
		if secret != "" && strings.Contains(s, secret) {
			return true
		}
	}
	return sigParam.MatchString(s)
}

func (r redactor) scrub(s string) string {
	if !r.leaks(s) {
		return s
	}
	for _, secret := range r.secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, redacted)
		}
	}
	return sigParam.ReplaceAllString(s, redacted)
}

// withoutQuery is rawURL without its query, fragment and password.
func withoutQuery(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		before, _, _ := strings.Cut(rawURL, "?")
		return before
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	return u.Redacted()
}

// redactedError stands in for an error whose text quoted a secret.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }

// Is lets errors.Is find context.DeadlineExceeded and the like without exposing the cause.
func (e *redactedError) Is(target error) bool { return errors.Is(e.cause, target) }

// Timeout keeps the redacted error a net.Error that times out when its cause did.
func (e *redactedError) Timeout() bool {
	var ne net.Error
	return errors.As(e.cause, &ne) && ne.Timeout()
}

// Temporary is part of net.Error; it is deprecated and always false here.
func (e *redactedError) Temporary() bool { return false }
