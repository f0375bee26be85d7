package forward

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
)

// Fail policies: what a blocking callback is answered when the backend cannot answer.
const (
	PolicyAllow = "allow"
	PolicyDeny  = "deny"
)

// Config configures a Forwarder. Zero values take the defaults noted on each field.
type Config struct {
	// URL is the app backend's callback endpoint (http or https). Tencent's query string
	// is appended to it.
	URL string
	// Timeout bounds each request to the backend (default 1500ms). Tencent waits 2 s for
	// a blocking answer, so this must leave room for the operator's own work.
	Timeout time.Duration
	// FailPolicy is PolicyAllow (default) or PolicyDeny.
	FailPolicy string
	// Authorization, if set, is the Authorization header of every request to the backend;
	// it takes the place of one made from the URL's user info.
	Authorization string
	// QueueSize bounds the after-event deliveries held at once, pending retries
	// included (default 10000).
	QueueSize int
	// QueueBytes bounds the bytes of body and query string those deliveries hold
	// (default 32 MiB), so that large callbacks piling up while the backend is down
	// cannot exhaust the operator's memory.
	QueueBytes int64
	// MaxAttempts bounds the attempts per after-event delivery (default 8).
	MaxAttempts int
	// MaxAge bounds how long after enqueueing a delivery is still retried (default 10m).
	MaxAge time.Duration
	// BaseBackoff is the first retry's backoff ceiling; it doubles per attempt up to
	// MaxBackoff (defaults 500ms and 30s). Delays are drawn uniformly below the ceiling.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// Workers is the number of after-event delivery goroutines (default 4).
	Workers int
	// DrainTimeout bounds the delivery of what is still queued at shutdown (default 10s).
	DrainTimeout time.Duration
	// HTTPClient replaces the built-in keep-alive transport, which does not follow
	// redirects. Timeout still bounds each request.
	HTTPClient *http.Client
	Log        logr.Logger
	// Registerer receives the metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
}

// Defaults.
const (
	DefaultTimeout      = 1500 * time.Millisecond
	DefaultQueueSize    = 10000
	DefaultMaxAttempts  = 8
	DefaultMaxAge       = 10 * time.Minute
	DefaultBaseBackoff  = 500 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
	DefaultWorkers      = 4
	DefaultDrainTimeout = 10 * time.Second
)

// DefaultQueueBytes keeps the queue a small share of the manager's 512 MiB memory limit:
// a held callback costs about its counted bytes of live heap, and the garbage collector
// lets the heap grow to about twice what is live, so a full queue adds some 70 MiB at
// most. It holds 512 callbacks of the callback server's 64 KiB maximum, or all of
// DefaultQueueSize up to about 3 KiB each, which room callbacks rarely exceed.
const DefaultQueueBytes = 32 << 20

// withDefaults validates c and fills in the defaults. It also returns the parsed URL.
func (c Config) withDefaults() (Config, *url.URL, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return c, nil, fmt.Errorf("forward URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return c, nil, fmt.Errorf("forward URL %q: scheme must be http or https", c.URL)
	}
	if u.Host == "" {
		return c, nil, fmt.Errorf("forward URL %q has no host", c.URL)
	}
	if u.Fragment != "" || u.RawFragment != "" {
		return c, nil, fmt.Errorf("forward URL %q must not have a fragment", c.URL)
	}
	switch c.FailPolicy {
	case "":
		c.FailPolicy = PolicyAllow
	case PolicyAllow, PolicyDeny:
	default:
		return c, nil, fmt.Errorf("fail policy %q: want %q or %q", c.FailPolicy, PolicyAllow, PolicyDeny)
	}
	durations := []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&c.Timeout, DefaultTimeout}, {&c.MaxAge, DefaultMaxAge}, {&c.BaseBackoff, DefaultBaseBackoff},
		{&c.MaxBackoff, DefaultMaxBackoff}, {&c.DrainTimeout, DefaultDrainTimeout},
	}
	for _, d := range durations {
		if *d.v < 0 {
			return c, nil, errors.New("forward durations must not be negative")
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	ints := []struct {
		v   *int
		def int
	}{{&c.QueueSize, DefaultQueueSize}, {&c.MaxAttempts, DefaultMaxAttempts}, {&c.Workers, DefaultWorkers}}
	for _, n := range ints {
		if *n.v < 0 {
			return c, nil, errors.New("forward queue size, attempts and workers must not be negative")
		}
		if *n.v == 0 {
			*n.v = n.def
		}
	}
	switch {
	case c.QueueBytes < 0:
		return c, nil, errors.New("forward queue bytes must not be negative")
	case c.QueueBytes == 0:
		c.QueueBytes = DefaultQueueBytes
	}
	if c.MaxBackoff < c.BaseBackoff {
		c.MaxBackoff = c.BaseBackoff
	}
	return c, u, nil
}
