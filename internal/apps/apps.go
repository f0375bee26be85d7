// Package apps holds what the controller and the callback server agree on about
// LiveApps: which LiveApp serves an SDKAppID, how the controller hands each app's
// callback tokens to the callback-server replicas (a Secret in the operator's namespace,
// which is all the callback server may read), and how it learns that every replica has
// them before Tencent is switched to a new token (each replica's Lease says which token
// sets it holds).
package apps

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
)

// Refusal says why a LiveApp does not serve its SDKAppID.
type Refusal struct {
	Reason  string // a condition reason
	Message string
}

// Serving sorts LiveApps into those that serve their SDKAppID and namespace and those
// that do not: an SDKAppID, and a namespace, belong to the oldest LiveApp that claims it
// (creation time, which has a resolution of one second, then namespace and name), so a
// claimant created in a later second never takes an app away from the first; claimants
// created in the same second are ordered by name, the same way in every process. Apps
// being deleted still serve until they are gone.
func Serving(list []livev1.LiveApp) (serving map[types.NamespacedName]*livev1.LiveApp, refused map[types.NamespacedName]Refusal) {
	ordered := make([]*livev1.LiveApp, len(list))
	for i := range list {
		ordered[i] = &list[i]
	}
	slices.SortFunc(ordered, func(a, b *livev1.LiveApp) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	serving = map[types.NamespacedName]*livev1.LiveApp{}
	refused = map[types.NamespacedName]Refusal{}
	byApp := map[int64]*livev1.LiveApp{}
	byNamespace := map[string]*livev1.LiveApp{}
	for _, a := range ordered {
		key := types.NamespacedName{Namespace: a.Namespace, Name: a.Name}
		if first, ok := byApp[a.Spec.SDKAppID]; ok {
			refused[key] = Refusal{"SDKAppIDTaken", fmt.Sprintf("SDKAppID %d is served by the older LiveApp %s/%s", a.Spec.SDKAppID, first.Namespace, first.Name)}
			continue
		}
		if first, ok := byNamespace[a.Namespace]; ok {
			refused[key] = Refusal{"NamespaceTaken", fmt.Sprintf(
				"namespace %s holds the rooms of the older LiveApp %s; a namespace serves one app", a.Namespace, first.Name)}
			continue
		}
		byApp[a.Spec.SDKAppID], byNamespace[a.Namespace] = a, a
		serving[key] = a
	}
	return serving, refused
}

// The Secret, in the operator's namespace, through which the controller gives the
// callback server an app's tokens (and the fan-out's Authorization header).
const (
	// ProjectionAppLabel marks a projection Secret with its LiveApp's UID.
	ProjectionAppLabel = "live.liveroom.io/app-uid"
	// ProjectionAppAnnotation names the LiveApp, "namespace/name".
	ProjectionAppAnnotation = "live.liveroom.io/app"
	// TokensKey holds the accepted callback tokens, one per line.
	TokensKey = "tokens"
	// ForwardAuthorizationKey holds the Authorization header value of deliveries to the
	// app's backend, when it has one.
	ForwardAuthorizationKey = "forwardAuthorization"
	// TokensHashAnnotation is TokensHash of the tokens the Secret holds.
	TokensHashAnnotation = "live.liveroom.io/tokens-hash"
)

// ProjectionName is the name of an app's projection Secret.
func ProjectionName(app types.UID) string {
	sum := sha256.Sum256([]byte(app))
	return "liveroom-app-" + hex.EncodeToString(sum[:])[:16]
}

// TokensHash names a set of tokens without revealing them: the same set, in any order,
// has the same hash.
func TokensHash(tokens []string) string {
	sorted := slices.Clone(tokens)
	slices.Sort(sorted)
	sum := sha256.Sum256([]byte(strings.Join(sorted, "\n")))
	return hex.EncodeToString(sum[:])[:16]
}

// PlaceholderToken is the token config/app ships in its token Secret. It is public: the
// controller stalls an app whose tokens hold it, and the callback server refuses it as if
// the app had no token.
const PlaceholderToken = "liveroom-demo-token-change-me"

// ParseTokens reads tokens, one per line; blank lines and lines starting with # are
// skipped.
func ParseTokens(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if tok := strings.TrimSpace(line); tok != "" && !strings.HasPrefix(tok, "#") {
			out = append(out, tok)
		}
	}
	return out
}

// Each callback-server replica keeps a Lease in the operator's namespace, renewed every
// ReplicaRenewInterval, that says which token set of each app it has loaded.
const (
	// ReplicaLabel marks the Leases of callback-server replicas.
	ReplicaLabel = "live.liveroom.io/callback-replica"
	// LoadedTokensAnnotation is a JSON object: LiveApp UID -> TokensHash of the tokens
	// the replica accepts for it.
	LoadedTokensAnnotation = "live.liveroom.io/loaded-tokens"
	// ReplicaLeaseDuration is how long a replica's Lease stands without renewal.
	ReplicaLeaseDuration = 30 * time.Second
	// ReplicaRenewInterval is how often a replica renews it.
	ReplicaRenewInterval = 10 * time.Second
)

// LoadedTokens reads a replica Lease's loaded token sets.
func LoadedTokens(lease *coordinationv1.Lease) map[string]string {
	out := map[string]string{}
	_ = json.Unmarshal([]byte(lease.Annotations[LoadedTokensAnnotation]), &out)
	return out
}

// EncodeLoadedTokens is the LoadedTokensAnnotation value of loaded.
func EncodeLoadedTokens(loaded map[string]string) string {
	b, _ := json.Marshal(loaded)
	return string(b)
}

// Alive reports whether a replica's Lease was renewed recently enough at now.
func Alive(lease *coordinationv1.Lease, now time.Time) bool {
	if lease.Spec.RenewTime == nil {
		return false
	}
	d := ReplicaLeaseDuration
	if s := lease.Spec.LeaseDurationSeconds; s != nil && *s > 0 {
		d = time.Duration(*s) * time.Second
	}
	return now.Before(lease.Spec.RenewTime.Add(d))
}

// AllLoaded reports whether every live replica has loaded the token set hash for the app,
// and how many replicas are alive; with none alive it is false, since then no callback
// could be checked with a new token either.
func AllLoaded(leases []coordinationv1.Lease, app types.UID, hash string, now time.Time) (bool, int) {
	alive := 0
	for i := range leases {
		if !Alive(&leases[i], now) {
			continue
		}
		alive++
		if LoadedTokens(&leases[i])[string(app)] != hash {
			return false, alive
		}
	}
	return alive > 0, alive
}
