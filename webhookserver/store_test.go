package webhookserver

import (
	"context"

	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/naming"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// A person relabels a room (kubectl label --overwrite): the label key has dots, and the
// callbacks that change the spec, a destroy among them, must still be stored.
func TestRelabelledRoomKeepsTakingCallbacks(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Now().Unix() - 100
	expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody("relabelled", "first-owner", t0)}))

	room := getRoom(t, "relabelled")
	patch := client.MergeFrom(room.DeepCopy())
	room.Labels[livev1.OwnerLabel] = "chosen-by-a-person"
	room.Labels["team.example.com/on-call"] = "yes"
	g.Expect(k8s.Patch(context.Background(), room, patch, client.FieldOwner("kubectl-label"))).To(Succeed())

	owner := fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterChangeOwner","RoomId":"relabelled","EventTime":%d,"CurrentOwner_Account":"second-owner"}`, t0*1000+1000)
	expectOK(t, send(t, callback{command: tencent.CommandChangeOwner, body: owner}))
	expectOK(t, send(t, callback{command: tencent.CommandUpdateRoomInfo, body: updateBody("relabelled", "renamed", t0*1000+2000)}))
	expectOK(t, send(t, callback{command: tencent.CommandDestroyRoom, body: destroyBody("relabelled", t0*1000+3000)}))

	room = getRoom(t, "relabelled")
	g.Expect(room.Status.Phase).To(Equal(livev1.RoomPhaseEnded))
	g.Expect(room.Spec.Owner).To(Equal("144115216631667826"), "the destroy's RoomInfo still applies")
	g.Expect(room.Spec.RoomName).To(Equal("live name"))
	g.Expect(room.Labels).To(HaveKeyWithValue(livev1.OwnerLabel, "chosen-by-a-person"), "the person's label stays theirs")
	g.Expect(room.Labels).To(HaveKeyWithValue("team.example.com/on-call", "yes"))
	g.Expect(room.Labels).To(HaveKey(livev1.CategoryLabelPrefix+"3"), "labels nobody else owns still follow the spec")
}

// App users pick RoomIds freely: rooms spelled like a victim's primary and fallback names
// must not keep the victim's create from being stored.
func TestRoomIDsSpelledLikeAnotherRoomsNames(t *testing.T) {
	g := NewWithT(t)
	victim := "Victim_Room.7"
	names := naming.RoomObjectNames(victim)
	for _, squatter := range names[:2] {
		expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody(squatter, "attacker", time.Now().Unix())}))
	}
	expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody(victim, "victim", time.Now().Unix())}))
	room := getRoom(t, names[2])
	g.Expect(room.Spec.RoomID).To(Equal(victim))
	g.Expect(room.Status.Phase).To(Equal(livev1.RoomPhaseLive))
}

// A change the LiveRoom schema refuses can never be stored: 422, never "503, retry", and
// nothing of it is written.
func TestUnstorableChangeIsRefusedNotRetried(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Now().Unix() - 100
	expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody("many-admins", "u", t0)}))
	addAdmins := func(from, n int, ms int64) reply {
		accounts := make([]string, n)
		for i := range accounts {
			accounts[i] = fmt.Sprintf("%q", fmt.Sprintf("admin-%d", from+i))
		}
		body := fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterModifyAdmin","RoomId":"many-admins","EventTime":%d,"Admin_Account":[%s],"opType":"add"}`, ms, strings.Join(accounts, ","))
		return send(t, callback{command: tencent.CommandModifyAdmin, body: body})
	}
	expectOK(t, addAdmins(0, 200, t0*1000+1000))
	before := getRoom(t, "many-admins").ResourceVersion
	r := addAdmins(200, 100, t0*1000+2000)
	g.Expect(r.status).To(Equal(http.StatusUnprocessableEntity))
	g.Expect(r.ActionStatus).To(Equal("FAIL"))
	g.Expect(r.ErrorInfo).To(ContainSubstring("more than 256"))
	room := getRoom(t, "many-admins")
	g.Expect(room.ResourceVersion).To(Equal(before), "nothing stored")
	g.Expect(room.Status.Admins).To(HaveLen(200))
}

// The API server's refusal of the object (422) is permanent too.
func TestAPIServerInvalidIsNotRetryable(t *testing.T) {
	g := NewWithT(t)
	c := &failingClient{Client: writes, statusErr: apierrors.NewInvalid(schema.GroupKind{Group: livev1.GroupVersion.Group, Kind: "LiveRoom"}, "x",
		field.ErrorList{field.TooMany(field.NewPath("status", "seats"), 300, 256)})}
	c.statusFailures.Store(1)
	s := serverOn(t, Options{}, c, writes)
	url := startHandler(t, s)
	r := send(t, callback{command: tencent.CommandCreateRoom, body: createBody("refused-by-schema", "u", time.Now().Unix()), url: url})
	g.Expect(r.status).To(Equal(http.StatusUnprocessableEntity))
}

// Spec and status are two writes. When the second fails after the first was stored, the
// callback is answered 503 and retrying it completes the room as if it had gone through.
func TestRetryAfterPartialWriteIsHarmless(t *testing.T) {
	g := NewWithT(t)
	c := &failingClient{Client: writes, statusErr: apierrors.NewServiceUnavailable("etcd leader changed")}
	s := serverOn(t, Options{}, c, writes)
	url := startHandler(t, s)

	t0 := time.Now().Unix() - 100
	body := createBody("half-written", "u", t0)
	c.statusFailures.Store(1)
	r := send(t, callback{command: tencent.CommandCreateRoom, body: body, url: url})
	g.Expect(r.status).To(Equal(http.StatusServiceUnavailable))
	g.Expect(getRoom(t, "half-written").Status.Phase).To(BeEmpty(), "the object was stored, its status not")
	expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: body, url: url}))
	room := getRoom(t, "half-written")
	g.Expect(room.Status.Phase).To(Equal(livev1.RoomPhaseLive))
	g.Expect(room.Status.CreateTime.Unix()).To(Equal(t0))
	g.Expect(room.Spec.RoomName).To(Equal("half-written"))

	// The same for an update that changes the spec.
	update := updateBody("half-written", "renamed", t0*1000+1000)
	c.statusFailures.Store(1)
	g.Expect(send(t, callback{command: tencent.CommandUpdateRoomInfo, body: update, url: url}).status).To(Equal(http.StatusServiceUnavailable))
	expectOK(t, send(t, callback{command: tencent.CommandUpdateRoomInfo, body: update, url: url}))
	room = getRoom(t, "half-written")
	g.Expect(room.Spec.RoomName).To(Equal("renamed"))
	g.Expect(room.Status.EventTimes.Settings).To(Equal(t0*1000 + 1000))
}

// failingClient fails the next statusFailures status writes with statusErr.
type failingClient struct {
	client.Client
	statusErr      error
	statusFailures atomic.Int32
}

func (f *failingClient) Status() client.SubResourceWriter {
	return &failingStatus{SubResourceWriter: f.Client.Status(), f: f}
}

type failingStatus struct {
	client.SubResourceWriter
	f *failingClient
}

func (s *failingStatus) Apply(ctx context.Context, ac runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	if s.f.statusFailures.Add(-1) >= 0 {
		return s.f.statusErr
	}
	return s.SubResourceWriter.Apply(ctx, ac, opts...)
}
