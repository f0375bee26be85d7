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
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
)

// Tokens holds the callback tokens that Sign may be made with. Several are valid at once
// so that a token can be rotated in Tencent and in the Secret in either order.
type Tokens struct {
	file    string
	env     []string
	current atomic.Pointer[[]string]
}

// NewTokens loads tokens from file (one per line; "" for none) and from envValue (the
// LIVEROOM_CALLBACK_TOKENS variable, one per line). With neither, callbacks are unsigned.
func NewTokens(file, envValue string) (*Tokens, error) {
	t := &Tokens{file: file, env: parseTokens(envValue)}
	if err := t.reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// Enabled reports whether Sign is checked.
func (t *Tokens) Enabled() bool { return len(*t.current.Load()) > 0 }

// Count is the number of valid tokens.
func (t *Tokens) Count() int { return len(*t.current.Load()) }

func (t *Tokens) reload() error {
	all := append([]string(nil), t.env...)
	if t.file != "" {
		b, err := os.ReadFile(t.file)
		if err != nil {
			return fmt.Errorf("reading callback tokens: %w", err)
		}
		all = append(all, parseTokens(string(b))...)
	}
	t.current.Store(&all)
	return nil
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
// mounted Secret's atomic symlink swap, until ctx ends. A file that cannot be read keeps
// the tokens loaded before, so a half-written Secret never opens the door.
func (t *Tokens) Watch(ctx context.Context, log logr.Logger) error {
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
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.Events:
		case err := <-w.Errors:
			log.Error(err, "Watching callback tokens failed; polling")
		case <-poll.C:
		}
		before := t.Count()
		if err := t.reload(); err != nil {
			log.Error(err, "Kept the previous callback tokens")
			continue
		}
		if after := t.Count(); after != before {
			log.Info("Reloaded callback tokens", "count", after)
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
