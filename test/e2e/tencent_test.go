package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/liveroom-io/liveroom-operator/internal/tencent"
	"github.com/liveroom-io/liveroom-operator/internal/tencent/faketencent"
)

// TestResyncCreatesRoomsListedInTencent points the controller at a fake Tencent REST API:
// rooms whose create callbacks never arrived appear from the resync alone, and a declared
// room is created in Tencent.
func TestResyncCreatesRoomsListedInTencent(t *testing.T) {
	g := NewWithT(t)
	const ns = "resync-live"
	kubectl(t, "create", "namespace", ns)
	fake := faketencent.New(1400000000, "administrator", "e2e-secret-key")
	defer fake.Close()
	now := tencent.FlexInt(time.Now().Unix())
	fake.AddRoom(tencent.RoomInfo{RoomID: "lost-callback-1", RoomType: "Live", OwnerAccount: "user5", RoomName: new("Never called back"), CreateTime: now})
	fake.AddRoom(tencent.RoomInfo{RoomID: "Lost_Callback.2", RoomType: "Live", OwnerAccount: "user6", CreateTime: now})
	key := filepath.Join(work, "tencent-secret-key")
	g.Expect(os.WriteFile(key, []byte("e2e-secret-key\n"), 0o600)).To(Succeed())

	startController(t, "--room-namespace="+ns, "--tencent-api-url="+fake.URL(), "--tencent-secret-key-file="+key, "--resync-interval=2s")
	g.Eventually(func() string {
		return kubectl(t, "get", "liveroom", "lost-callback-1", "-n", ns, "--ignore-not-found", "-o", `jsonpath={.metadata.annotations.live\.liveroom\.io/origin}/{.status.phase}/{.spec.owner}/{.spec.roomName}`)
	}, timeout).Should(Equal("resync/Live/user5/Never called back"))
	g.Eventually(func() string {
		return kubectl(t, "get", "liverooms", "-n", ns, "--field-selector", "spec.roomId=Lost_Callback.2", "-o", "jsonpath={.items[*].status.phase}")
	}, timeout).Should(Equal("Live"))

	// A room declared in Git is created in Tencent.
	kubectlApply(t, `apiVersion: live.liveroom.io/v1alpha1
kind: LiveRoom
metadata:
  name: from-git
  namespace: `+ns+`
spec:
  roomId: from-git
  sdkAppId: 1400000000
  roomName: Declared in Git
  owner: gitops
`)
	g.Eventually(func() bool { _, ok := fake.Room("from-git"); return ok }, timeout).Should(BeTrue())
	g.Eventually(func() string {
		return kubectl(t, "get", "liveroom", "from-git", "-n", ns, "-o", `jsonpath={.status.conditions[?(@.type=="Synced")].status}`)
	}, timeout).Should(Equal("True"))
}
