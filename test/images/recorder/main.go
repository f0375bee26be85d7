// Command recorder stands in for a recording container in the real-node end-to-end test:
// it logs the room facts that the operator injects into recording Jobs, then records until
// it is asked to stop and logs a graceful stop.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))
	log.Info("Recording started",
		"roomID", os.Getenv("LIVEROOM_ROOM_ID"),
		"sdkAppID", os.Getenv("LIVEROOM_SDK_APP_ID"),
		"owner", os.Getenv("LIVEROOM_OWNER"),
		"roomName", os.Getenv("LIVEROOM_ROOM_NAME"))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	log.Info("Recording stopped gracefully", "signal", context.Cause(ctx).Error())
}
