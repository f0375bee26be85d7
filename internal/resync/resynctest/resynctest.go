// Package resynctest holds helpers shared by the resync tests and its benchmark driver:
// a client that counts API-server writes and a Lister that reduces the fake Tencent
// server's room list to the fields the real get_room_list returns.
package resynctest

import (
	"context"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// WriteCounter is a client.Client that counts the writes it sends to the API server:
// Create, Update, Patch, Apply, Delete and DeleteAllOf, on objects and on subresources
// (status). Reads pass through uncounted.
type WriteCounter struct {
	client.Client
	n atomic.Int64
}

// CountWrites wraps c.
func CountWrites(c client.Client) *WriteCounter { return &WriteCounter{Client: c} }

// Writes is the number of writes so far.
func (w *WriteCounter) Writes() int64 { return w.n.Load() }

// Reset sets the count to zero and returns what it was.
func (w *WriteCounter) Reset() int64 { return w.n.Swap(0) }

// Create counts a write and passes it on.
func (w *WriteCounter) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	w.n.Add(1)
	return w.Client.Create(ctx, obj, opts...)
}

// Update counts a write and passes it on.
func (w *WriteCounter) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	w.n.Add(1)
	return w.Client.Update(ctx, obj, opts...)
}

// Patch counts a write and passes it on.
func (w *WriteCounter) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	w.n.Add(1)
	return w.Client.Patch(ctx, obj, patch, opts...)
}

// Apply counts a write and passes it on.
func (w *WriteCounter) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	w.n.Add(1)
	return w.Client.Apply(ctx, obj, opts...)
}

// Delete counts a write and passes it on.
func (w *WriteCounter) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	w.n.Add(1)
	return w.Client.Delete(ctx, obj, opts...)
}

// DeleteAllOf counts a write and passes it on.
func (w *WriteCounter) DeleteAllOf(ctx context.Context, obj client.Object, opts ...client.DeleteAllOfOption) error {
	w.n.Add(1)
	return w.Client.DeleteAllOf(ctx, obj, opts...)
}

// Status counts the status writes.
func (w *WriteCounter) Status() client.SubResourceWriter {
	return &subResourceCounter{SubResourceWriter: w.Client.Status(), n: &w.n}
}

// SubResource counts the writes of any subresource.
func (w *WriteCounter) SubResource(subResource string) client.SubResourceClient {
	return &subResourceCounter{SubResourceWriter: w.Client.SubResource(subResource), sub: w.Client.SubResource(subResource), n: &w.n}
}

type subResourceCounter struct {
	client.SubResourceWriter
	sub client.SubResourceClient // nil for Status()
	n   *atomic.Int64
}

func (s *subResourceCounter) Get(ctx context.Context, obj, subResource client.Object, opts ...client.SubResourceGetOption) error {
	return s.sub.Get(ctx, obj, subResource, opts...)
}

func (s *subResourceCounter) Create(ctx context.Context, obj, subResource client.Object, opts ...client.SubResourceCreateOption) error {
	s.n.Add(1)
	return s.SubResourceWriter.Create(ctx, obj, subResource, opts...)
}

func (s *subResourceCounter) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	s.n.Add(1)
	return s.SubResourceWriter.Update(ctx, obj, opts...)
}

func (s *subResourceCounter) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	s.n.Add(1)
	return s.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

func (s *subResourceCounter) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	s.n.Add(1)
	return s.SubResourceWriter.Apply(ctx, obj, opts...)
}

// RoomLister is what the resync needs from Tencent (resync.Lister).
type RoomLister interface {
	ListAllRooms(ctx context.Context, fn func(page []tencent.RoomInfo) error) error
	GetRoomInfo(ctx context.Context, roomID string) (*tencent.RoomInfo, error)
}

// ListFieldsOnly makes l's listing return only the fields Tencent's get_room_list
// documents (RoomId, RoomName, Owner_Account, CoverURL, Category, CreateTime,
// ActivityStatus, ViewCount); the fake server returns every field.
func ListFieldsOnly(l RoomLister) RoomLister { return listFieldsOnly{l} }

type listFieldsOnly struct{ RoomLister }

func (l listFieldsOnly) ListAllRooms(ctx context.Context, fn func(page []tencent.RoomInfo) error) error {
	return l.RoomLister.ListAllRooms(ctx, func(page []tencent.RoomInfo) error {
		out := make([]tencent.RoomInfo, len(page))
		for i, ri := range page {
			out[i] = tencent.RoomInfo{
				RoomID: ri.RoomID, RoomName: ri.RoomName, OwnerAccount: ri.OwnerAccount,
				CoverURL: ri.CoverURL, Category: ri.Category, CreateTime: ri.CreateTime,
				ActivityStatus: ri.ActivityStatus, ViewCount: ri.ViewCount,
			}
		}
		return fn(out)
	})
}
