// Command pause is the Pod sandbox image of the real-node test cluster: it holds the Pod's
// namespaces and does nothing until it is asked to stop.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
