package webhookserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/liveroom-io/liveroom-operator/internal/apps"
)

// PlaceholderToken is the token config/app ships; a token set that holds it is refused as
// if it held no token.
const PlaceholderToken = apps.PlaceholderToken

// Tokens holds the callback tokens that an app's Sign may be made with. Several are valid
// at once so that a token can be rotated in Tencent and in the operator in either order.
// The zero value holds none.
type Tokens struct {
	current atomic.Pointer[tokenSet]
}

// tokenSet is one set of tokens and its apps.TokensHash.
type tokenSet struct {
	tokens []string
	hash   string
}

// NewTokens holds tokens; with none, Enabled is false. A set without a usable token (the
// placeholder) is refused.
func NewTokens(tokens ...string) (*Tokens, error) {
	t := &Tokens{}
	if len(tokens) == 0 {
		return t, nil
	}
	if _, err := t.Set(tokens); err != nil {
		return nil, err
	}
	return t, nil
}

// Set replaces the tokens. A set that holds no token, or the placeholder, is refused and
// the tokens held before stay in force: an emptied or half-written projection never opens
// the door. changed reports whether the set differs from the one held before.
func (t *Tokens) Set(tokens []string) (changed bool, err error) {
	if err := checkTokens(tokens); err != nil {
		return false, err
	}
	next := &tokenSet{tokens: slices.Clone(tokens), hash: apps.TokensHash(tokens)}
	old := t.current.Swap(next)
	return old == nil || old.hash != next.hash, nil
}

// checkTokens refuses a set without a usable token.
func checkTokens(tokens []string) error {
	if len(tokens) == 0 {
		return errors.New("the projection holds no callback token (one per line, # starts a comment)")
	}
	if slices.Contains(tokens, PlaceholderToken) {
		return fmt.Errorf("the projection holds the placeholder token %q: replace it with the callback token set in Tencent", PlaceholderToken)
	}
	return nil
}

func (t *Tokens) set() *tokenSet {
	if s := t.current.Load(); s != nil {
		return s
	}
	return &tokenSet{}
}

// Enabled reports whether Sign is checked: whether a token was ever loaded. It never
// turns false again, as a set without a token is refused.
func (t *Tokens) Enabled() bool { return len(t.set().tokens) > 0 }

// Count is the number of valid tokens.
func (t *Tokens) Count() int { return len(t.set().tokens) }

// Hash is apps.TokensHash of the tokens, "" when there are none: what the replica's
// Lease reports as loaded.
func (t *Tokens) Hash() string { return t.set().hash }

// Sign errors, each a rejection reason.
var (
	errMissingSign = errors.New("Sign or RequestTime is missing")
	errBadTime     = errors.New("RequestTime is not a Unix time in seconds")
	errStale       = errors.New("RequestTime is outside the accepted window")
	errBadSign     = errors.New("Sign does not match any of the app's callback tokens")
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
	for _, tok := range t.set().tokens {
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
