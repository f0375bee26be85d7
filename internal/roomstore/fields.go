package roomstore

import (
	"context"
	"errors"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/value"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
)

// conflictingFields lists the field paths of a server-side apply conflict with another
// manager, as the API server prints them; a resourceVersion conflict has none.
func conflictingFields(err error) []string {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Reason != metav1.StatusReasonConflict || status.Status().Details == nil {
		return nil
	}
	var fields []string
	for _, c := range status.Status().Details.Causes {
		if c.Type == metav1.CauseTypeFieldManagerConflict && c.Field != "" {
			fields = append(fields, c.Field)
		}
	}
	return fields
}

// othersFields maps the printed form of every field path that a manager other than the
// store owns in the stored room to the path itself. The printed form alone is ambiguous
// (".metadata.labels.live.liveroom.io/owner" does not say where the label key starts),
// so conflicts are resolved against the managed fields, which are unambiguous.
func (s *Store) othersFields(ctx context.Context, key client.ObjectKey) (map[string]fieldpath.Path, error) {
	var room livev1.LiveRoom
	// The cache strips managed fields: read them from the API server.
	if err := s.APIReader.Get(ctx, key, &room); err != nil {
		return nil, err
	}
	paths := map[string]fieldpath.Path{}
	for _, mf := range room.ManagedFields {
		if mf.Manager == s.FieldOwner || mf.FieldsV1 == nil {
			continue
		}
		var set fieldpath.Set
		if err := set.FromJSON(mf.FieldsV1.GetRawReader()); err != nil {
			return nil, fmt.Errorf("reading the fields %s manages: %w", mf.Manager, err)
		}
		set.Iterate(func(p fieldpath.Path) { paths[p.String()] = p.Copy() })
	}
	return paths, nil
}

// withoutField removes the field at p from the apply body obj and reports whether it was
// there. List elements are found by their key fields or value, as managed fields name them.
func withoutField(obj map[string]any, p fieldpath.Path) bool {
	_, ok := without(obj, p)
	return ok
}

func without(v any, p fieldpath.Path) (any, bool) {
	pe := p[0]
	if pe.FieldName != nil {
		m, ok := v.(map[string]any)
		if !ok {
			return v, false
		}
		child, ok := m[*pe.FieldName]
		switch {
		case !ok:
			return v, false
		case len(p) == 1:
			delete(m, *pe.FieldName)
			return m, true
		}
		child, ok = without(child, p[1:])
		m[*pe.FieldName] = child
		return m, ok
	}
	list, ok := v.([]any)
	if !ok {
		return v, false
	}
	i := slices.IndexFunc(list, func(e any) bool { return selects(pe, e) })
	switch {
	case i < 0:
		return v, false
	case len(p) == 1:
		return slices.Delete(list, i, i+1), true
	}
	list[i], ok = without(list[i], p[1:])
	return list, ok
}

// selects reports whether the list element e is the one pe names.
func selects(pe fieldpath.PathElement, e any) bool {
	switch {
	case pe.Key != nil:
		m, ok := e.(map[string]any)
		if !ok {
			return false
		}
		for _, f := range *pe.Key {
			v, ok := m[f.Name]
			if !ok || !value.Equals(value.NewValueInterface(v), f.Value) {
				return false
			}
		}
		return true
	case pe.Value != nil:
		return value.Equals(value.NewValueInterface(e), *pe.Value)
	}
	return false // atomic lists are owned whole; their elements never conflict alone
}
