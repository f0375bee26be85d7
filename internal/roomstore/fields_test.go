package roomstore

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/value"
	"sigs.k8s.io/yaml"
)

func TestWithoutFieldFollowsManagedFieldPaths(t *testing.T) {
	body := func() map[string]any {
		return map[string]any{
			"metadata": map[string]any{"labels": map[string]any{
				"live.liveroom.io/owner": "u", "live.liveroom.io/room-type": "Live",
			}},
			"status": map[string]any{
				"seats":  []any{map[string]any{"index": int64(0), "member": "a"}, map[string]any{"index": int64(1), "member": "b"}},
				"admins": []any{"x", "y"},
			},
		}
	}
	cases := []struct {
		name string
		path fieldpath.Path
		want func(map[string]any)
	}{
		{"label key with dots", fieldpath.MakePathOrDie("metadata", "labels", "live.liveroom.io/owner"), func(m map[string]any) {
			delete(m["metadata"].(map[string]any)["labels"].(map[string]any), "live.liveroom.io/owner")
		}},
		{"field of a keyed list element", fieldpath.MakePathOrDie("status", "seats", fieldpath.KeyByFields("index", int64(1)), "member"), func(m map[string]any) {
			delete(m["status"].(map[string]any)["seats"].([]any)[1].(map[string]any), "member")
		}},
		{"set element", fieldpath.MakePathOrDie("status", "admins", value.NewValueInterface("x")), func(m map[string]any) {
			m["status"].(map[string]any)["admins"] = []any{"y"}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The path goes through its printed form and back, as a conflict does.
			paths := map[string]fieldpath.Path{}
			set := fieldpath.NewSet(c.path)
			raw, err := set.ToJSON()
			if err != nil {
				t.Fatal(err)
			}
			var parsed fieldpath.Set
			if err := parsed.FromJSON(bytesReader(raw)); err != nil {
				t.Fatal(err)
			}
			parsed.Iterate(func(p fieldpath.Path) { paths[p.String()] = p })
			got, want := body(), body()
			if !withoutField(got, paths[c.path.String()]) {
				t.Fatalf("%s not found", c.path)
			}
			c.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %v\nwant %v", got, want)
			}
		})
	}
	if withoutField(body(), fieldpath.MakePathOrDie("metadata", "labels", "absent")) {
		t.Fatal("an absent field was reported removed")
	}
}

// The limits validate() enforces are the CRD's.
func TestLimitsMatchTheCRD(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "live.liveroom.io_liverooms.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	schema := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	if got := schema.Properties["spec"].Properties["seats"].Properties["max"].Maximum; got == nil || *got != MaxSeats {
		t.Errorf("spec.seats.max maximum in the CRD = %v, the status holds %d seats", got, MaxSeats)
	}
	status := schema.Properties["status"]
	for name, limit := range map[string]int64{"admins": MaxAdmins, "seats": MaxSeats} {
		if got := status.Properties[name].MaxItems; got == nil || *got != limit {
			t.Errorf("status.%s maxItems in the CRD = %v, the store checks %d", name, got, limit)
		}
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
