package webhookserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
)

// PlaceholderToken is the demo token that config/default ships. It is public, so a token
// set that holds it is refused as if it held no token.
const PlaceholderToken = "liveroom-demo-token-change-me"

// tokenSettle is how long the token file must stay unchanged after an event before it is
// read, so that the several events of one Secret update cause one reload.
const tokenSettle = 100 * time.Millisecond

// Tokens holds the callback tokens that Sign may be made with. Several are valid at once
// so that a token can be rotated in Tencent and in the Secret in either order.
type Tokens struct {
	file    string
	env     []string
	current atomic.Pointer[[]string]
}

// NewTokens loads tokens from file (one per line; "" for none) and from envValue (the
// LIVEROOM_CALLBACK_TOKENS variable, one per line). A source that is configured must hold
// at least one token and not the placeholder. With neither source, Enabled is false.
func NewTokens(file, envValue string) (*Tokens, error) {
	t := &Tokens{file: file}
	if strings.TrimSpace(envValue) != "" {
		env, err := checkTokens(parseTokens(envValue), "LIVEROOM_CALLBACK_TOKENS")
		if err != nil {
			return nil, err
		}
		t.env = env
	}
	if _, err := t.reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// Enabled reports whether Sign is checked. It never changes after NewTokens: a reload
// that would leave no token is refused.
func (t *Tokens) Enabled() bool { return len(*t.current.Load()) > 0 }

// Count is the number of valid tokens.
func (t *Tokens) Count() int { return len(*t.current.Load()) }

// reload reads the token file again. On error the tokens loaded before stay in force.
func (t *Tokens) reload() (changed bool, err error) {
	all := append([]string(nil), t.env...)
	if t.file != "" {
		b, err := os.ReadFile(t.file)
		if err != nil {
			return false, fmt.Errorf("reading callback tokens: %w", err)
		}
		fromFile, err := checkTokens(parseTokens(string(b)), "callback token file "+t.file)
		if err != nil {
			return false, err
		}
		all = append(all, fromFile...)
	}
	old := t.current.Swap(&all)
	return old == nil || !slices.Equal(*old, all), nil
}

// checkTokens refuses a configured source without a usable token.
func checkTokens(tokens []string, source string) ([]string, error) {
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%s holds no token (one per line, # starts a comment)", source)
	}
	if slices.Contains(tokens, PlaceholderToken) {
		return nil, fmt.Errorf("%s holds the placeholder token %q: replace it with the callback token set in Tencent", source, PlaceholderToken)
	}
	return tokens, nil
}

func parseTokens(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if tok := strings.TrimSpace(line); tok != "" && !strings.HasPrefix(tok, "#") {
			out = append(out, tok)
		}
	}
	return out
}

// Watch re-reads the token file whenever it or its directory changes, which covers a
// mounted Secret's atomic symlink swap, until ctx ends. A file that cannot be read, or
// that holds no token or the placeholder, keeps the tokens loaded before: an emptied or
// half-written Secret never opens the door. Such a reload is logged once per distinct
// failure and counted in m every time it is attempted, so an alert lasts as long as the
// file stays wrong.
func (t *Tokens) Watch(ctx context.Context, log logr.Logger, m *Metrics) error {
	m.Tokens.Set(float64(t.Count()))
	if t.file == "" {
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(t.file)); err != nil {
		return fmt.Errorf("watching callback tokens: %w", err)
	}
	// Some file systems drop events; a slow poll backs the watch up.
	poll := time.NewTicker(30 * time.Second)
	defer poll.Stop()
	var settled <-chan time.Time
	lastFailure := ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.Events:
			settled = time.After(tokenSettle)
			continue
		case err := <-w.Errors:
			log.Info("Watching callback tokens failed; polling", "error", err.Error())
			continue
		case <-settled:
			settled = nil
		case <-poll.C:
		}
		changed, err := t.reload()
		if err != nil {
			m.TokenReloadErrors.Inc()
			if err.Error() != lastFailure {
				log.Error(err, "Kept the previous callback tokens", "count", t.Count())
			}
			lastFailure = err.Error()
			continue
		}
		lastFailure = ""
		m.Tokens.Set(float64(t.Count()))
		if changed {
			log.Info("Reloaded callback tokens", "count", t.Count())
		}
	}
}

// Sign errors, each a rejection reason.
var (
	errMissingSign = errors.New("Sign or RequestTime is missing")
	errBadTime     = errors.New("RequestTime is not a Unix time in seconds")
	errStale       = errors.New("RequestTime is outside the accepted window")
	errBadSign     = errors.New("Sign does not match any configured token")
)

// Verify checks Sign = hex(sha256(token + RequestTime)) against every token in constant
// time, and RequestTime within maxSkew of now.
func (t *Tokens) Verify(sign, requestTime string, now time.Time, maxSkew time.Duration) error {
	if sign == "" || requestTime == "" {
		return errMissingSign
	}
	sec, err := strconv.ParseInt(requestTime, 10, 64)
	if err != nil {
		return errBadTime
	}
	if d := now.Sub(time.Unix(sec, 0)); d > maxSkew || d < -maxSkew {
		return errStale
	}
	got, err := hex.DecodeString(sign)
	if err != nil || len(got) != sha256.Size {
		return errBadSign
	}
	ok := 0
	for _, tok := range *t.current.Load() {
		want := sha256.Sum256([]byte(tok + requestTime))
		ok |= subtle.ConstantTimeCompare(got, want[:])
	}
	if ok != 1 {
		return errBadSign
	}
	return nil
}

// Sign computes the Sign Tencent sends for a token and a RequestTime.
func Sign(token, requestTime string) string {
	sum := sha256.Sum256([]byte(token + requestTime))
	return hex.EncodeToString(sum[:])
}
