package apps

import (
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
)

func app(ns, name string, sdk int64, created time.Time) livev1.LiveApp {
	return livev1.LiveApp{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: metav1.NewTime(created)},
		Spec:       livev1.LiveAppSpec{SDKAppID: sdk},
	}
}

func TestOldestClaimantServes(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	list := []livev1.LiveApp{
		app("shop", "newer-same-id", 1400000001, t0.Add(time.Hour)),
		app("staging", "staging", 1400000002, t0),
		app("shop", "shop", 1400000001, t0),
		app("other", "same-id", 1400000001, t0.Add(time.Minute)),
		app("staging", "second-in-namespace", 1400000003, t0.Add(time.Second)),
	}
	serving, refused := Serving(list)
	for _, want := range []string{"shop/shop", "staging/staging"} {
		ns, name, _ := cut(want)
		if serving[types.NamespacedName{Namespace: ns, Name: name}] == nil {
			t.Errorf("%s does not serve", want)
		}
	}
	for key, reason := range map[string]string{"shop/newer-same-id": "SDKAppIDTaken", "other/same-id": "SDKAppIDTaken", "staging/second-in-namespace": "NamespaceTaken"} {
		ns, name, _ := cut(key)
		if got := refused[types.NamespacedName{Namespace: ns, Name: name}]; got.Reason != reason || got.Message == "" {
			t.Errorf("%s: %+v, want %s", key, got, reason)
		}
	}
	// The order of the list does not matter.
	for i := range list {
		rotated := append(append([]livev1.LiveApp{}, list[i:]...), list[:i]...)
		if s, _ := Serving(rotated); len(s) != 2 || s[types.NamespacedName{Namespace: "shop", Name: "shop"}] == nil {
			t.Fatalf("rotation %d: %v", i, s)
		}
	}
}

func cut(s string) (string, string, bool) {
	for i := range s {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func TestTokensHashIgnoresOrder(t *testing.T) {
	if TokensHash([]string{"a", "b"}) != TokensHash([]string{"b", "a"}) || TokensHash([]string{"a"}) == TokensHash([]string{"a", "b"}) {
		t.Fatal("hash must name the set")
	}
	if got := ParseTokens("# comment\n one \n\ntwo\n"); len(got) != 2 || got[0] != "one" || got[1] != "two" {
		t.Fatalf("ParseTokens: %q", got)
	}
}

func TestAllLoadedCountsLiveReplicasOnly(t *testing.T) {
	now := time.Unix(1700000000, 0)
	lease := func(renewed time.Duration, loaded map[string]string) coordinationv1.Lease {
		rt := metav1.NewMicroTime(now.Add(-renewed))
		return coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{LoadedTokensAnnotation: EncodeLoadedTokens(loaded)}},
			Spec:       coordinationv1.LeaseSpec{RenewTime: &rt},
		}
	}
	h := TokensHash([]string{"new", "old"})
	leases := []coordinationv1.Lease{
		lease(time.Second, map[string]string{"uid": h}),
		lease(time.Hour, map[string]string{"uid": "stale"}), // a replica gone long ago
	}
	if ok, alive := AllLoaded(leases, "uid", h, now); !ok || alive != 1 {
		t.Fatalf("got %v, %d alive", ok, alive)
	}
	leases = append(leases, lease(2*time.Second, map[string]string{"uid": "old-set"}))
	if ok, _ := AllLoaded(leases, "uid", h, now); ok {
		t.Fatal("a live replica without the new tokens was not waited for")
	}
	if ok, _ := AllLoaded(nil, "uid", h, now); ok {
		t.Fatal("no replica at all cannot have loaded anything")
	}
}
